//! What a command prints for whoever reads its standard output: the
//! reports and tables of the one-shot commands, and the daemon's line per
//! decision. Through [`out!`] and [`outln!`], not `print!`, which panics
//! when the reader has gone away.
//!
//! A reader that went away (a closed pipe: `simulate | head`, a log
//! shipper that restarted) is not the command's failure: the line is
//! dropped, and the daemon keeps scaling (its decisions are in the audit
//! log either way). Any other failure to write (a full disk behind a
//! redirect) is said on standard error.

use std::fmt;
use std::io::{ErrorKind, Write as _};

/// Write `args` to standard output, as `print!` does, without panicking.
pub fn write(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush())
        && e.kind() != ErrorKind::BrokenPipe
    {
        eprintln!("vedfolnir-autoscaler: standard output: {e}");
    }
}
