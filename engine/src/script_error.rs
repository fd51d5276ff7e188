//! script_error
