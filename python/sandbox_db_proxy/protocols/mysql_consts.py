"""Constants of the MySQL client/server protocol v10 that the relay's Python side needs.

Values are fixed by the protocol (MySQL source "include/mysql_com.h"; MySQL dev docs
"Capabilities Flags", "Command Phase"; MariaDB KB "Server Response Packets") and by the
server error list (MySQL "Server Error Message Reference", MariaDB KB "MariaDB Error Codes").
The Rust side (rust/core/src/mysqlwire/consts.rs) has the same values.
"""

from __future__ import annotations

# --- capability flags -------------------------------------------------------------------
CLIENT_LONG_PASSWORD = 1
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_NO_SCHEMA = 1 << 4
CLIENT_COMPRESS = 1 << 5
CLIENT_ODBC = 1 << 6
CLIENT_LOCAL_FILES = 1 << 7
CLIENT_IGNORE_SPACE = 1 << 8
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_INTERACTIVE = 1 << 10
CLIENT_SSL = 1 << 11
CLIENT_IGNORE_SIGPIPE = 1 << 12
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_RESERVED = 1 << 14
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24

# What the proxy may offer a client. Deliberately absent (default deny):
#  LOCAL_FILES (LOAD DATA LOCAL: the server could read client files, and it is a write),
#  COMPRESS / ZSTD (the scanner reads plain frames), QUERY_ATTRIBUTES and
#  OPTIONAL_RESULTSET_METADATA (change COM_QUERY / result-set layouts), MULTI_FACTOR_AUTH,
#  CAN_HANDLE_EXPIRED_PASSWORDS (sandbox mode lets a session run SET PASSWORD), and every
#  MariaDB extended capability (CLIENT_MYSQL stays set, so none are negotiated).
PROXY_CAPABILITIES = (
    CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS | CLIENT_LONG_FLAG | CLIENT_CONNECT_WITH_DB
    | CLIENT_IGNORE_SPACE | CLIENT_PROTOCOL_41 | CLIENT_INTERACTIVE | CLIENT_IGNORE_SIGPIPE
    | CLIENT_TRANSACTIONS | CLIENT_RESERVED | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SESSION_TRACK | CLIENT_DEPRECATE_EOF
)
# Capabilities the client and the backend must agree on, because they change the layout
# of packets the proxy forwards unchanged.
LAYOUT_CAPABILITIES = (CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF | CLIENT_SESSION_TRACK
                       | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS)
# Always sent to the backend (the proxy's own HandshakeResponse41 needs them).
BACKEND_REQUIRED = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
                    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_LONG_PASSWORD
                    | CLIENT_TRANSACTIONS)

SERVER_STATUS_AUTOCOMMIT = 0x0002
MAX_PACKET = 1 << 24  # max_packet announced to the backend when the client gives none

# --- commands ---------------------------------------------------------------------------
COM_SLEEP = 0x00
COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_CREATE_DB = 0x05
COM_DROP_DB = 0x06
COM_REFRESH = 0x07
COM_SHUTDOWN = 0x08
COM_STATISTICS = 0x09
COM_PROCESS_INFO = 0x0A
COM_CONNECT = 0x0B
COM_PROCESS_KILL = 0x0C
COM_DEBUG = 0x0D
COM_PING = 0x0E
COM_TIME = 0x0F
COM_DELAYED_INSERT = 0x10
COM_CHANGE_USER = 0x11
COM_BINLOG_DUMP = 0x12
COM_TABLE_DUMP = 0x13
COM_CONNECT_OUT = 0x14
COM_REGISTER_SLAVE = 0x15
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_DAEMON = 0x1D
COM_BINLOG_DUMP_GTID = 0x1E
COM_RESET_CONNECTION = 0x1F
COM_STMT_BULK_EXECUTE = 0xFA

COMMAND_NAMES = {
    COM_SLEEP: "COM_SLEEP", COM_QUIT: "COM_QUIT", COM_INIT_DB: "COM_INIT_DB", COM_QUERY: "COM_QUERY",
    COM_FIELD_LIST: "COM_FIELD_LIST", COM_CREATE_DB: "COM_CREATE_DB", COM_DROP_DB: "COM_DROP_DB",
    COM_REFRESH: "COM_REFRESH", COM_SHUTDOWN: "COM_SHUTDOWN", COM_STATISTICS: "COM_STATISTICS",
    COM_PROCESS_INFO: "COM_PROCESS_INFO", COM_CONNECT: "COM_CONNECT",
    COM_PROCESS_KILL: "COM_PROCESS_KILL", COM_DEBUG: "COM_DEBUG", COM_PING: "COM_PING",
    COM_TIME: "COM_TIME", COM_DELAYED_INSERT: "COM_DELAYED_INSERT", COM_CHANGE_USER: "COM_CHANGE_USER",
    COM_BINLOG_DUMP: "COM_BINLOG_DUMP", COM_TABLE_DUMP: "COM_TABLE_DUMP",
    COM_CONNECT_OUT: "COM_CONNECT_OUT", COM_REGISTER_SLAVE: "COM_REGISTER_SLAVE",
    COM_STMT_PREPARE: "COM_STMT_PREPARE", COM_STMT_EXECUTE: "COM_STMT_EXECUTE",
    COM_STMT_SEND_LONG_DATA: "COM_STMT_SEND_LONG_DATA", COM_STMT_CLOSE: "COM_STMT_CLOSE",
    COM_STMT_RESET: "COM_STMT_RESET", COM_SET_OPTION: "COM_SET_OPTION",
    COM_STMT_FETCH: "COM_STMT_FETCH", COM_DAEMON: "COM_DAEMON",
    COM_BINLOG_DUMP_GTID: "COM_BINLOG_DUMP_GTID", COM_RESET_CONNECTION: "COM_RESET_CONNECTION",
    COM_STMT_BULK_EXECUTE: "COM_STMT_BULK_EXECUTE",
}


def command_name(cmd: int) -> str:
    return COMMAND_NAMES.get(cmd, f"COM_UNKNOWN_0x{cmd:02x}")


# Why each refused command is refused (shown to the agent in the ERR packet).
BLOCKED_COMMANDS = {
    COM_CHANGE_USER: "re-authenticates the session as another user, bypassing the proxy's login",
    COM_PROCESS_KILL: "kills another session's connection or query",
    COM_PROCESS_INFO: "lists other sessions and their SQL (like SHOW PROCESSLIST)",
    COM_SHUTDOWN: "shuts the database server down",
    COM_REFRESH: "flushes server caches, logs or privileges (like FLUSH)",
    COM_DEBUG: "writes server debug information to the error log",
    COM_BINLOG_DUMP: "streams the replication log (a replica protocol, not a query)",
    COM_BINLOG_DUMP_GTID: "streams the replication log (a replica protocol, not a query)",
    COM_REGISTER_SLAVE: "registers a replica with the server",
    COM_TABLE_DUMP: "is an obsolete replication command",
    COM_DAEMON: "is internal to the server",
    COM_CONNECT_OUT: "is internal to the server",
    COM_CONNECT: "is internal to the server",
    COM_SLEEP: "is internal to the server",
    COM_TIME: "is internal to the server",
    COM_DELAYED_INSERT: "is internal to the server",
    COM_CREATE_DB: "creates a database",
    COM_DROP_DB: "drops a database",
    COM_STMT_BULK_EXECUTE: "runs a statement in bulk (a write path); it was not negotiated",
}

# --- response kinds for MysqlResponseScanner.expect() -------------------------------------
R_QUERY, R_PREPARE, R_EXECUTE, R_FETCH, R_FIELD_LIST, R_SIMPLE, R_STATISTICS = range(7)
# scanner events and summary kinds
EV_HOLD, EV_DONE, EV_INFILE = 0, 1, 2
END_OK, END_ERR, END_RESULTSET, END_PREPARED, END_TEXT = range(5)
# summary tuple indexes
S_KIND, S_AFFECTED, S_LAST_ID, S_STATUS, S_WARNINGS, S_ROWS, S_SETS, S_ERR_CODE, S_SQLSTATE, \
    S_ERR_MSG, S_STMT_ID, S_PARAMS, S_COLUMNS = range(13)

# --- server error codes the proxy sends ---------------------------------------------------
ER_DBACCESS_DENIED = (1044, "42000")
ER_ACCESS_DENIED = (1045, "28000")
ER_TOO_MANY_CONNECTIONS = (1040, "08004")
ER_UNKNOWN_ERROR = (1105, "HY000")
ER_NOT_ALLOWED_COMMAND = (1148, "42000")
ER_NET_PACKET_TOO_LARGE = (1153, "08S01")
ER_NET_PACKETS_OUT_OF_ORDER = (1156, "08S01")
ER_UNKNOWN_STMT_HANDLER = (1243, "HY000")
ER_READ_ONLY = (1792, "25006")          # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
ER_MALFORMED_PACKET = (1835, "HY000")
ER_SECURE_TRANSPORT_REQUIRED = (3159, "HY000")
ER_CLIENT_INTERACTION_TIMEOUT = (4031, "HY000")
CR_CONN_HOST_ERROR = (2003, "HY000")    # client-side codes, used for "the database is unreachable"
CR_SERVER_LOST = (2013, "HY000")
