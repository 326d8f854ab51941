"""Type stub for the private native module built from rust/python (pyo3).

Each section belongs to one binding file in rust/python/src/; edit only your section.
"""

__version__: str

# --- errors (rust/python/src/errors.rs) ------------------------------------------------
class NativeError(Exception): ...
class LexError(NativeError): ...
class FrameError(NativeError): ...
class TooLargeError(FrameError): ...
class InvalidArgument(NativeError): ...

# --- sql (rust/python/src/sql.rs) ------------------------------------------------------
# (filled in by the SQL lexer/fast-path work)

# --- pgwire (rust/python/src/pgwire.rs) ------------------------------------------------
# (filled in by the PostgreSQL relay work)

# --- mysqlwire (rust/python/src/mysqlwire.rs) ------------------------------------------
# (filled in by the MySQL relay work)
