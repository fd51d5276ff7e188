//! toyc repl (see issue 6)
