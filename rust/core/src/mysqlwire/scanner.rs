//! Server-response scanner for the command phase.
//!
//! The relay forwards server bytes to the client in bulk (one write per received chunk);
//! this scanner walks the same bytes, frame header by frame header, WITHOUT copying rows,
//! and reports only what the relay's state machine needs: when the response to the
//! current command is complete (so the next command may be classified), its final OK /
//! ERR / EOF fields, the row count, the statement id of a prepared statement, and a
//! LOCAL INFILE request (which the relay must refuse).
//!
//! Response shapes (MySQL "COM_QUERY Response", "Text Resultset", "Binary Protocol
//! Resultset", "COM_STMT_PREPARE Response", "COM_STMT_FETCH Response", "COM_FIELD_LIST"):
//! - OK | ERR | 0xfb LOCAL INFILE request | result set;
//! - result set = column count, column definitions, [EOF unless CLIENT_DEPRECATE_EOF],
//!   rows, terminator (EOF, or OK with 0xfe header under CLIENT_DEPRECATE_EOF) or ERR;
//! - SERVER_MORE_RESULTS_EXISTS in a final OK / terminator means another result follows;
//! - a row packet starting with 0xfe is a terminator only if its payload is shorter than
//!   0xffffff (a longer one is a row whose first value has an 8-byte length);
//! - a binary result set whose EOF has SERVER_STATUS_CURSOR_EXISTS ends without rows.
//!
//! Only small control packets (OK/ERR/EOF, column count, prepare OK) are captured; row
//! and column-definition packets are skipped by length.

use super::codec::Reader;
use super::consts::*;
use super::framing::MAX_FRAME_PAYLOAD;
use super::packets::{parse_eof, parse_err, parse_ok, ErrInfo};
use crate::{Error, Result};

/// What kind of response the command that was just forwarded produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// COM_QUERY: OK | ERR | LOCAL INFILE request | text result set(s)
    Query,
    /// COM_STMT_PREPARE: ERR | prepare OK + parameter and column definitions
    Prepare,
    /// COM_STMT_EXECUTE: OK | ERR | binary result set(s)
    Execute,
    /// COM_STMT_FETCH: rows + terminator | ERR
    Fetch,
    /// COM_FIELD_LIST: column definitions + terminator | ERR
    FieldList,
    /// one OK / ERR / EOF packet (COM_PING, COM_INIT_DB, COM_RESET_CONNECTION, COM_STMT_RESET, COM_SET_OPTION)
    Simple,
    /// COM_STATISTICS: one packet of text | ERR
    Statistics,
}

impl Expect {
    pub fn from_code(code: u8) -> Result<Expect> {
        Ok(match code {
            0 => Expect::Query,
            1 => Expect::Prepare,
            2 => Expect::Execute,
            3 => Expect::Fetch,
            4 => Expect::FieldList,
            5 => Expect::Simple,
            6 => Expect::Statistics,
            _ => return Err(Error::Invalid { message: format!("unknown response kind {code}") }),
        })
    }
}

/// How the response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndKind {
    #[default]
    Ok = 0,
    Err = 1,
    /// result set(s) ending with a terminator (EOF / OK-with-0xfe)
    ResultSet = 2,
    /// COM_STMT_PREPARE answered with a statement id
    Prepared = 3,
    /// COM_STATISTICS text
    Text = 4,
}

/// What the relay learns about a complete response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    pub kind: EndKind,
    pub affected_rows: u64,
    pub last_insert_id: u64,
    /// status flags of the last OK / EOF seen
    pub status: u16,
    pub warnings: u16,
    /// rows in all result sets of this response
    pub rows: u64,
    pub result_sets: u32,
    pub err: Option<ErrInfo>,
    pub stmt_id: u32,
    pub num_params: u16,
    pub num_columns: u16,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ScanEvent {
    /// The response goes on. `hold_from`: bytes from this offset of the chunk (plus any
    /// held earlier) start a packet that might be a LOCAL INFILE request: do not forward
    /// them yet. `None`: forward the whole chunk.
    NeedMore { hold_from: Option<usize> },
    /// The response is complete at byte `end` of this chunk; the scanner is idle again.
    Done { end: usize, summary: Summary },
    /// The server asks for a local file (0xfb). The packet starts at `start` of this chunk
    /// (0 when it began in held bytes). The relay must not forward it: it sends an empty
    /// packet with sequence id `seq + 1` to the server and keeps feeding; the server's
    /// reply (sequence id `seq + 2`) completes the response as usual.
    Infile { start: usize, seq: u8, filename: Vec<u8> },
}

/// Explicit response state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// first packet of a response or of the next result after SERVER_MORE_RESULTS_EXISTS
    First,
    ColumnDefs { left: u64 },
    ColumnsEof,
    Rows,
    PrepParams { left: u16 },
    PrepParamsEof,
    PrepCols { left: u16 },
    PrepColsEof,
    FieldDefs,
    Single,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Undecided,
    Skip,
    Capture,
}

#[derive(Debug)]
pub struct ResponseScanner {
    expect: Expect,
    phase: Phase,
    deprecate_eof: bool,
    /// expected sequence id of the next frame
    seq: u8,
    hdr: [u8; 4],
    hdr_len: usize,
    in_frame: bool,
    frame_len: usize,
    frame_left: usize,
    /// the current frame continues a logical packet whose previous frame was 0xffffff long
    continuation: bool,
    /// the logical packet being skipped has a next frame
    mode: Mode,
    capture: Vec<u8>,
    /// sequence id of the first frame of the current logical packet
    packet_seq: u8,
    summary: Summary,
}

fn frame_err(message: impl Into<String>) -> Error {
    Error::Frame { message: message.into() }
}

impl ResponseScanner {
    pub fn new(deprecate_eof: bool) -> Self {
        ResponseScanner {
            expect: Expect::Simple,
            phase: Phase::Idle,
            deprecate_eof,
            seq: 0,
            hdr: [0; 4],
            hdr_len: 0,
            in_frame: false,
            frame_len: 0,
            frame_left: 0,
            continuation: false,
            mode: Mode::Undecided,
            capture: Vec::new(),
            packet_seq: 0,
            summary: Summary::default(),
        }
    }

    pub fn set_deprecate_eof(&mut self, on: bool) {
        self.deprecate_eof = on;
    }

    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// A command was forwarded; its response starts with sequence id `seq`.
    pub fn expect(&mut self, expect: Expect, seq: u8) -> Result<()> {
        if self.phase != Phase::Idle {
            return Err(Error::Invalid { message: "a response is still in progress".into() });
        }
        self.expect = expect;
        self.seq = seq;
        self.summary = Summary::default();
        self.hdr_len = 0;
        self.in_frame = false;
        self.continuation = false;
        self.capture.clear();
        self.phase = match expect {
            Expect::Fetch => Phase::Rows,
            Expect::FieldList => Phase::FieldDefs,
            Expect::Simple | Expect::Statistics => Phase::Single,
            _ => Phase::First,
        };
        Ok(())
    }

    /// Forget any response in progress (connection is being torn down).
    pub fn reset(&mut self) {
        self.phase = Phase::Idle;
        self.hdr_len = 0;
        self.in_frame = false;
        self.continuation = false;
        self.capture.clear();
    }

    fn may_infile(&self) -> bool {
        self.phase == Phase::First && self.expect == Expect::Query
    }

    /// Scan one received chunk.
    pub fn feed(&mut self, data: &[u8]) -> Result<ScanEvent> {
        if self.phase == Phase::Idle {
            return Err(frame_err("unsolicited data from the server while no command is running"));
        }
        // offset in `data` where the current logical packet started (None: in an earlier chunk)
        let mut packet_start: Option<usize> = if self.hdr_len > 0 || self.in_frame { None } else { Some(0) };
        let mut pos = 0usize;
        loop {
            if !self.in_frame {
                if self.hdr_len == 0 && !self.continuation {
                    packet_start = Some(pos);
                }
                let need = 4 - self.hdr_len;
                let avail = data.len() - pos;
                let take = need.min(avail);
                if take > 0 {
                    let src = data.get(pos..pos + take).ok_or_else(|| frame_err("internal offset"))?;
                    if let Some(dst) = self.hdr.get_mut(self.hdr_len..self.hdr_len + take) {
                        dst.copy_from_slice(src);
                    }
                    self.hdr_len += take;
                    pos += take;
                }
                if self.hdr_len < 4 {
                    return Ok(self.need_more(packet_start));
                }
                self.hdr_len = 0;
                let len = usize::from(self.hdr[0]) | usize::from(self.hdr[1]) << 8 | usize::from(self.hdr[2]) << 16;
                let seq = self.hdr[3];
                if seq != self.seq {
                    return Err(frame_err(format!("server packet out of order: sequence id {seq}, expected {}", self.seq)));
                }
                self.seq = seq.wrapping_add(1);
                self.in_frame = true;
                self.frame_len = len;
                self.frame_left = len;
                if self.continuation {
                    if self.mode == Mode::Capture {
                        return Err(frame_err("control packet of 16 MB or more from the server"));
                    }
                    self.mode = Mode::Skip;
                } else {
                    self.packet_seq = seq;
                    self.mode = Mode::Undecided;
                    self.capture.clear();
                }
            }
            if self.mode == Mode::Undecided {
                let first = if self.frame_left == 0 {
                    None
                } else if let Some(b) = data.get(pos) {
                    Some(*b)
                } else {
                    return Ok(self.need_more(packet_start));
                };
                self.mode = self.decide(first)?;
            }
            let avail = data.len() - pos;
            let n = self.frame_left.min(avail);
            if self.mode == Mode::Capture && n > 0 {
                let src = data.get(pos..pos + n).ok_or_else(|| frame_err("internal offset"))?;
                self.capture.extend_from_slice(src);
            }
            pos += n;
            self.frame_left -= n;
            if self.frame_left > 0 {
                return Ok(self.need_more(packet_start));
            }
            // frame complete
            self.in_frame = false;
            if self.frame_len == MAX_FRAME_PAYLOAD {
                self.continuation = true;
                continue;
            }
            self.continuation = false;
            let ev = if self.mode == Mode::Capture {
                let payload = std::mem::take(&mut self.capture);
                let r = self.on_captured(&payload, packet_start.unwrap_or(0));
                self.capture = payload;
                r?
            } else {
                self.on_skipped()?
            };
            if let Some(mut ev) = ev {
                if let ScanEvent::Done { end, .. } = &mut ev {
                    *end = pos;
                }
                if let ScanEvent::Infile { .. } = ev {
                    if pos != data.len() {
                        return Err(frame_err("server sent data after a LOCAL INFILE request"));
                    }
                }
                return Ok(ev);
            }
            if pos >= data.len() {
                return Ok(self.need_more(None));
            }
        }
    }

    fn need_more(&self, packet_start: Option<usize>) -> ScanEvent {
        let partial = self.hdr_len > 0 || self.in_frame;
        if partial && self.may_infile() {
            ScanEvent::NeedMore { hold_from: Some(packet_start.unwrap_or(0)) }
        } else {
            ScanEvent::NeedMore { hold_from: None }
        }
    }

    /// Decide from the phase and the first payload byte whether to capture the packet.
    fn decide(&self, first: Option<u8>) -> Result<Mode> {
        let big = self.frame_len >= MAX_FRAME_PAYLOAD;
        let capture = |what: &str| -> Result<Mode> {
            if big {
                Err(frame_err(format!("{what} of 16 MB or more from the server")))
            } else if first.is_none() {
                Err(frame_err(format!("empty packet where the server must send {what}")))
            } else {
                Ok(Mode::Capture)
            }
        };
        match self.phase {
            Phase::Idle => Err(frame_err("unsolicited server packet")),
            Phase::First => capture("a response header"),
            Phase::ColumnDefs { .. } | Phase::PrepParams { .. } | Phase::PrepCols { .. } => Ok(Mode::Skip),
            Phase::ColumnsEof | Phase::PrepParamsEof | Phase::PrepColsEof => capture("an EOF packet"),
            Phase::Rows | Phase::FieldDefs => match first {
                Some(EOF_HEADER) if !big => Ok(Mode::Capture),
                Some(ERR_HEADER) => capture("an ERR packet"),
                _ => Ok(Mode::Skip),
            },
            Phase::Single => {
                if self.expect == Expect::Statistics {
                    match first {
                        Some(ERR_HEADER) => capture("an ERR packet"),
                        _ => Ok(Mode::Skip),
                    }
                } else {
                    capture("an OK / ERR packet")
                }
            }
        }
    }

    fn done(&mut self) -> Option<ScanEvent> {
        self.phase = Phase::Idle;
        Some(ScanEvent::Done { end: 0, summary: std::mem::take(&mut self.summary) })
    }

    fn on_err(&mut self, payload: &[u8]) -> Result<Option<ScanEvent>> {
        self.summary.kind = EndKind::Err;
        self.summary.err = Some(parse_err(payload)?);
        Ok(self.done())
    }

    /// A result-set terminator: EOF, or OK with 0xfe under CLIENT_DEPRECATE_EOF.
    fn on_terminator(&mut self, payload: &[u8]) -> Result<Option<ScanEvent>> {
        if self.deprecate_eof {
            let ok = parse_ok(payload)?;
            self.summary.status = ok.status;
            self.summary.warnings = ok.warnings;
            self.summary.affected_rows = ok.affected_rows;
        } else {
            let (warnings, status) = parse_eof(payload)?;
            self.summary.status = status;
            self.summary.warnings = warnings;
        }
        self.summary.result_sets += 1;
        self.summary.kind = EndKind::ResultSet;
        if self.summary.status & SERVER_MORE_RESULTS_EXISTS != 0 && self.expect != Expect::Fetch {
            self.phase = Phase::First;
            Ok(None)
        } else {
            Ok(self.done())
        }
    }

    fn after_params(&mut self) -> Option<ScanEvent> {
        if self.summary.num_columns > 0 {
            self.phase = Phase::PrepCols { left: self.summary.num_columns };
            None
        } else {
            self.done()
        }
    }

    fn on_captured(&mut self, payload: &[u8], start: usize) -> Result<Option<ScanEvent>> {
        let head = payload.first().copied().ok_or_else(|| frame_err("empty control packet"))?;
        match self.phase {
            Phase::First => match head {
                ERR_HEADER => self.on_err(payload),
                OK_HEADER if self.expect == Expect::Prepare => {
                    let mut r = Reader::new(payload);
                    r.u8("prepare OK header")?;
                    self.summary.stmt_id = r.u32("statement id")?;
                    self.summary.num_columns = r.u16("number of columns")?;
                    self.summary.num_params = r.u16("number of parameters")?;
                    if !r.is_empty() {
                        r.u8("reserved")?;
                        if r.remaining() >= 2 {
                            self.summary.warnings = r.u16("warnings")?;
                        }
                    }
                    self.summary.kind = EndKind::Prepared;
                    if self.summary.num_params > 0 {
                        self.phase = Phase::PrepParams { left: self.summary.num_params };
                        Ok(None)
                    } else {
                        Ok(self.after_params())
                    }
                }
                OK_HEADER => {
                    let ok = parse_ok(payload)?;
                    self.summary.affected_rows = ok.affected_rows;
                    self.summary.last_insert_id = ok.last_insert_id;
                    self.summary.status = ok.status;
                    self.summary.warnings = ok.warnings;
                    self.summary.kind = EndKind::Ok;
                    if ok.status & SERVER_MORE_RESULTS_EXISTS != 0 {
                        Ok(None)
                    } else {
                        Ok(self.done())
                    }
                }
                LOCAL_INFILE_HEADER if self.expect == Expect::Query => {
                    // the server's reply to our empty packet comes with sequence id seq + 2
                    let seq = self.packet_seq;
                    self.seq = seq.wrapping_add(2);
                    Ok(Some(ScanEvent::Infile { start, seq, filename: payload.get(1..).unwrap_or(&[]).to_vec() }))
                }
                _ if matches!(self.expect, Expect::Query | Expect::Execute) => {
                    let mut r = Reader::new(payload);
                    let n = r.lenenc("column count")?;
                    if n == 0 || !r.is_empty() {
                        return Err(frame_err("malformed column count packet"));
                    }
                    self.phase = Phase::ColumnDefs { left: n };
                    Ok(None)
                }
                _ => Err(frame_err(format!("unexpected response packet header 0x{head:02x}"))),
            },
            Phase::ColumnsEof => match head {
                EOF_HEADER => {
                    let (warnings, status) = parse_eof(payload)?;
                    self.summary.status = status;
                    self.summary.warnings = warnings;
                    if self.expect == Expect::Execute && status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                        // a cursor was opened: rows come with COM_STMT_FETCH
                        self.summary.kind = EndKind::ResultSet;
                        self.summary.result_sets += 1;
                        return Ok(self.done());
                    }
                    self.phase = Phase::Rows;
                    Ok(None)
                }
                ERR_HEADER => self.on_err(payload),
                _ => Err(frame_err("expected EOF after column definitions")),
            },
            Phase::PrepParamsEof => match head {
                EOF_HEADER => Ok(self.after_params()),
                _ => Err(frame_err("expected EOF after parameter definitions")),
            },
            Phase::PrepColsEof => match head {
                EOF_HEADER => Ok(self.done()),
                _ => Err(frame_err("expected EOF after column definitions")),
            },
            Phase::Rows => match head {
                EOF_HEADER => self.on_terminator(payload),
                ERR_HEADER => self.on_err(payload),
                _ => Err(frame_err("internal: captured a row")),
            },
            Phase::FieldDefs => match head {
                EOF_HEADER => {
                    self.summary.kind = EndKind::ResultSet;
                    Ok(self.done())
                }
                ERR_HEADER => self.on_err(payload),
                _ => Err(frame_err("internal: captured a field definition")),
            },
            Phase::Single => match head {
                ERR_HEADER => self.on_err(payload),
                OK_HEADER => {
                    let ok = parse_ok(payload)?;
                    self.summary.status = ok.status;
                    self.summary.warnings = ok.warnings;
                    self.summary.kind = EndKind::Ok;
                    Ok(self.done())
                }
                EOF_HEADER => {
                    // COM_SET_OPTION answers with EOF (or OK-with-0xfe under DEPRECATE_EOF)
                    if payload.len() <= 5 {
                        let (w, s) = parse_eof(payload)?;
                        self.summary.status = s;
                        self.summary.warnings = w;
                    } else {
                        let ok = parse_ok(payload)?;
                        self.summary.status = ok.status;
                        self.summary.warnings = ok.warnings;
                    }
                    self.summary.kind = EndKind::Ok;
                    Ok(self.done())
                }
                _ => Err(frame_err(format!("unexpected response packet header 0x{head:02x}"))),
            },
            Phase::Idle | Phase::ColumnDefs { .. } | Phase::PrepParams { .. } | Phase::PrepCols { .. } => {
                Err(frame_err("internal: captured a skipped packet"))
            }
        }
    }

    fn on_skipped(&mut self) -> Result<Option<ScanEvent>> {
        match self.phase {
            Phase::ColumnDefs { left } => {
                let left = left.saturating_sub(1);
                self.phase = if left > 0 {
                    Phase::ColumnDefs { left }
                } else if self.deprecate_eof {
                    Phase::Rows
                } else {
                    Phase::ColumnsEof
                };
                Ok(None)
            }
            Phase::PrepParams { left } => {
                let left = left.saturating_sub(1);
                if left > 0 {
                    self.phase = Phase::PrepParams { left };
                    Ok(None)
                } else if self.deprecate_eof {
                    Ok(self.after_params())
                } else {
                    self.phase = Phase::PrepParamsEof;
                    Ok(None)
                }
            }
            Phase::PrepCols { left } => {
                let left = left.saturating_sub(1);
                if left > 0 {
                    self.phase = Phase::PrepCols { left };
                    Ok(None)
                } else if self.deprecate_eof {
                    Ok(self.done())
                } else {
                    self.phase = Phase::PrepColsEof;
                    Ok(None)
                }
            }
            Phase::Rows => {
                self.summary.rows += 1;
                Ok(None)
            }
            Phase::FieldDefs => Ok(None),
            Phase::Single if self.expect == Expect::Statistics => {
                self.summary.kind = EndKind::Text;
                Ok(self.done())
            }
            _ => Err(frame_err("unexpected packet from the server")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::put_lenenc;
    use super::super::framing::frame;
    use super::super::packets::{eof_packet, err_packet, ok_packet};
    use super::*;

    /// Build a text result set: column count, defs, [EOF], rows, terminator.
    fn result_set(seq: &mut u8, cols: u64, rows: &[Vec<u8>], deprecate_eof: bool, more: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cc = Vec::new();
        put_lenenc(&mut cc, cols);
        out.extend(frame(&cc, *seq));
        *seq = seq.wrapping_add(1);
        for _ in 0..cols {
            out.extend(frame(b"\x03def\x00\x00\x00\x01a\x00\x0c\x21\x00\x00\x00\x00\x00\x00\x00\x00\x00", *seq));
            *seq = seq.wrapping_add(1);
        }
        if !deprecate_eof {
            out.extend(eof_packet(*seq, 0, 2));
            *seq = seq.wrapping_add(1);
        }
        for r in rows {
            out.extend(frame(r, *seq));
            *seq = seq.wrapping_add(if r.len() >= MAX_FRAME_PAYLOAD { (r.len() / MAX_FRAME_PAYLOAD + 1) as u8 } else { 1 });
        }
        let status = if more { 2 | SERVER_MORE_RESULTS_EXISTS } else { 2 };
        if deprecate_eof {
            out.extend(ok_packet(*seq, 0, 0, status, 0, b"", true));
        } else {
            out.extend(eof_packet(*seq, 0, status));
        }
        *seq = seq.wrapping_add(1);
        out
    }

    fn scan_all(sc: &mut ResponseScanner, data: &[u8], chunk: usize) -> Vec<ScanEvent> {
        let mut evs = vec![];
        for c in data.chunks(chunk.max(1)) {
            let ev = sc.feed(c).unwrap();
            let stop = !matches!(ev, ScanEvent::NeedMore { .. });
            evs.push(ev);
            if stop {
                break;
            }
        }
        evs
    }

    #[test]
    fn text_result_set_any_chunking() {
        for deprecate in [false, true] {
            let mut seq = 1;
            let rows: Vec<Vec<u8>> = vec![b"\x011".to_vec(), b"\xfb".to_vec(), vec![0x02, b'x', b'y']];
            let data = result_set(&mut seq, 1, &rows, deprecate, false);
            for chunk in [1, 2, 3, 5, 7, 64, 4096] {
                let mut sc = ResponseScanner::new(deprecate);
                sc.expect(Expect::Query, 1).unwrap();
                let evs = scan_all(&mut sc, &data, chunk);
                match evs.last().unwrap() {
                    ScanEvent::Done { summary, end } => {
                        assert_eq!(summary.rows, 3);
                        assert_eq!(summary.kind, EndKind::ResultSet);
                        let last_chunk = data.len() % chunk;
                        assert_eq!(*end, if last_chunk == 0 { chunk.min(data.len()) } else { last_chunk });
                    }
                    e => panic!("not done: {e:?}"),
                }
                assert!(sc.is_idle());
            }
        }
    }

    #[test]
    fn multi_results_and_ok() {
        let mut seq = 1;
        let mut data = ok_packet(seq, 3, 0, 2 | SERVER_MORE_RESULTS_EXISTS, 0, b"", false);
        seq += 1;
        data.extend(result_set(&mut seq, 2, &[b"\x011\x012".to_vec()], true, true));
        data.extend(result_set(&mut seq, 1, &[b"\x011".to_vec(), b"\x012".to_vec()], true, false));
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Query, 1).unwrap();
        match sc.feed(&data).unwrap() {
            ScanEvent::Done { summary, end } => {
                assert_eq!(end, data.len());
                assert_eq!(summary.rows, 3);
                assert_eq!(summary.result_sets, 2);
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn err_mid_rows() {
        let mut data = frame(b"\x01", 1);
        data.extend(frame(b"\x03def", 2));
        data.extend(frame(b"\x011", 3));
        data.extend(err_packet(4, 1969, "70100", b"Query execution was interrupted (max_statement_time exceeded)"));
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Query, 1).unwrap();
        match sc.feed(&data).unwrap() {
            ScanEvent::Done { summary, .. } => {
                assert_eq!(summary.kind, EndKind::Err);
                assert_eq!(summary.err.unwrap().code, 1969);
                assert_eq!(summary.rows, 1);
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn row_starting_with_fe_is_a_row_when_16mb() {
        // a row whose first value is >= 16 MB: lenenc prefix 0xfe, frame of 0xffffff bytes
        let mut row = vec![0xfe];
        row.extend_from_slice(&((MAX_FRAME_PAYLOAD as u64) + 10).to_le_bytes());
        row.resize(MAX_FRAME_PAYLOAD + 19, b'a');
        let mut seq = 1;
        let data = result_set(&mut seq, 1, &[row], true, false);
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Query, 1).unwrap();
        let evs = scan_all(&mut sc, &data, 1 << 20);
        match evs.last().unwrap() {
            ScanEvent::Done { summary, .. } => assert_eq!(summary.rows, 1),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn local_infile_is_reported_and_held() {
        let data = frame(b"\xfb/etc/passwd", 1);
        for chunk in [1, 3, 4, 5, 100] {
            let mut sc = ResponseScanner::new(true);
            sc.expect(Expect::Query, 1).unwrap();
            let mut held_all = true;
            let mut last = None;
            for (i, c) in data.chunks(chunk).enumerate() {
                let ev = sc.feed(c).unwrap();
                match &ev {
                    ScanEvent::NeedMore { hold_from } => {
                        // never let any byte of the request through
                        assert_eq!(*hold_from, Some(0), "chunk {i}");
                    }
                    _ => {}
                }
                if !matches!(ev, ScanEvent::NeedMore { .. }) {
                    last = Some(ev);
                    break;
                }
                held_all &= true;
            }
            assert!(held_all);
            match last.unwrap() {
                ScanEvent::Infile { start, seq, filename } => {
                    assert_eq!(start, 0);
                    assert_eq!(seq, 1);
                    assert_eq!(filename, b"/etc/passwd");
                }
                e => panic!("{e:?}"),
            }
            // the server answers our empty packet (seq 2) with seq 3
            match sc.feed(&err_packet(3, 1148, "42000", b"refused")).unwrap() {
                ScanEvent::Done { summary, .. } => assert_eq!(summary.kind, EndKind::Err),
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn infile_after_first_result_in_same_chunk() {
        let mut seq = 1;
        let mut data = result_set(&mut seq, 1, &[b"\x011".to_vec()], true, true);
        let start = data.len();
        data.extend(frame(b"\xfbx.csv", seq));
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Query, 1).unwrap();
        match sc.feed(&data).unwrap() {
            ScanEvent::Infile { start: s, .. } => assert_eq!(s, start),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn prepare_response() {
        for deprecate in [false, true] {
            let mut data = Vec::new();
            let mut p = vec![0u8];
            p.extend_from_slice(&7u32.to_le_bytes());
            p.extend_from_slice(&2u16.to_le_bytes()); // columns
            p.extend_from_slice(&1u16.to_le_bytes()); // params
            p.push(0);
            p.extend_from_slice(&0u16.to_le_bytes());
            data.extend(frame(&p, 1));
            let mut seq = 2;
            for _ in 0..1 {
                data.extend(frame(b"\x03def?", seq));
                seq += 1;
            }
            if !deprecate {
                data.extend(eof_packet(seq, 0, 2));
                seq += 1;
            }
            for _ in 0..2 {
                data.extend(frame(b"\x03defc", seq));
                seq += 1;
            }
            if !deprecate {
                data.extend(eof_packet(seq, 0, 2));
            }
            for chunk in [1, 5, 1000] {
                let mut sc = ResponseScanner::new(deprecate);
                sc.expect(Expect::Prepare, 1).unwrap();
                match scan_all(&mut sc, &data, chunk).pop().unwrap() {
                    ScanEvent::Done { summary, .. } => {
                        assert_eq!(summary.kind, EndKind::Prepared);
                        assert_eq!(summary.stmt_id, 7);
                        assert_eq!((summary.num_params, summary.num_columns), (1, 2));
                    }
                    e => panic!("{e:?}"),
                }
            }
        }
    }

    #[test]
    fn execute_with_cursor_ends_at_eof() {
        let mut data = frame(b"\x01", 1);
        data.extend(frame(b"\x03defc", 2));
        data.extend(eof_packet(3, 0, 2 | SERVER_STATUS_CURSOR_EXISTS));
        let mut sc = ResponseScanner::new(false);
        sc.expect(Expect::Execute, 1).unwrap();
        assert!(matches!(sc.feed(&data).unwrap(), ScanEvent::Done { .. }));
        // then COM_STMT_FETCH: binary rows + EOF
        let mut f = frame(b"\x00\x00\x01", 1);
        f.extend(eof_packet(2, 0, 2 | SERVER_STATUS_LAST_ROW_SENT));
        sc.expect(Expect::Fetch, 1).unwrap();
        match sc.feed(&f).unwrap() {
            ScanEvent::Done { summary, .. } => assert_eq!(summary.rows, 1),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn simple_and_statistics() {
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Simple, 1).unwrap();
        assert!(matches!(sc.feed(&ok_packet(1, 0, 0, 2, 0, b"", false)).unwrap(), ScanEvent::Done { .. }));
        sc.expect(Expect::Simple, 1).unwrap();
        assert!(matches!(sc.feed(&eof_packet(1, 0, 2)).unwrap(), ScanEvent::Done { .. }));
        sc.expect(Expect::Statistics, 1).unwrap();
        match sc.feed(&frame(b"Uptime: 5  Threads: 1", 1)).unwrap() {
            ScanEvent::Done { summary, .. } => assert_eq!(summary.kind, EndKind::Text),
            e => panic!("{e:?}"),
        }
        sc.expect(Expect::FieldList, 1).unwrap();
        let mut fl = frame(b"\x03defa", 1);
        fl.extend(eof_packet(2, 0, 2));
        assert!(matches!(sc.feed(&fl).unwrap(), ScanEvent::Done { .. }));
    }

    #[test]
    fn errors_not_panics() {
        // wrong sequence id
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Query, 1).unwrap();
        assert!(sc.feed(&ok_packet(5, 0, 0, 2, 0, b"", false)).is_err());
        // unsolicited
        let mut sc = ResponseScanner::new(true);
        assert!(sc.feed(b"\x01\x00\x00\x00\x00").is_err());
        // bad column count
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Query, 1).unwrap();
        assert!(sc.feed(&frame(b"\xfc\x01", 1)).is_err());
        // empty first packet
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Query, 1).unwrap();
        assert!(sc.feed(&frame(b"", 1)).is_err());
        // huge OK packet
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Simple, 1).unwrap();
        assert!(sc.feed(&[0xff, 0xff, 0xff, 1, 0]).is_err());
        // data after local infile request
        let mut sc = ResponseScanner::new(true);
        sc.expect(Expect::Query, 1).unwrap();
        let mut d = frame(b"\xfbf", 1);
        d.push(0);
        assert!(sc.feed(&d).is_err());
    }

    #[test]
    fn fuzz_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let kinds = [Expect::Query, Expect::Prepare, Expect::Execute, Expect::Fetch, Expect::FieldList, Expect::Simple, Expect::Statistics];
        for round in 0..3000 {
            let mut sc = ResponseScanner::new(round % 2 == 0);
            let _ = sc.expect(kinds[round % kinds.len()], 1);
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = (x % 40) as usize;
                let mut chunk: Vec<u8> = (0..n).map(|i| (x >> (i % 56)) as u8).collect();
                // bias towards plausible headers
                if n >= 4 && x % 3 == 0 {
                    chunk[0] = (x % 12) as u8;
                    chunk[1] = 0;
                    chunk[2] = 0;
                    chunk[3] = 1;
                }
                if sc.feed(&chunk).is_err() {
                    break;
                }
            }
        }
    }
}
