//! The reader over hostile topic memory (see the end of this file).
