//! toyc stdlib
