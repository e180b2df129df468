//! Reading usernames and passwords from the terminal or stdin.

use std::io::{BufRead, BufReader, Read, Write};

use crate::error::CliError;

/// The password piped on stdin: everything up to EOF without the trailing
/// line break(s).
pub fn read_stdin_secret() -> Result<String, CliError> {
    let mut buf = String::new();
    std::io::stdin()
        .lock()
        .read_to_string(&mut buf)
        .map_err(|e| CliError::usage(format!("cannot read the password from stdin: {e}")))?;
    parse_stdin_secret(&buf)
}

fn parse_stdin_secret(buf: &str) -> Result<String, CliError> {
    let secret = parse_stdin_line("--password-stdin", buf)?;
    if secret.is_empty() {
        return Err(CliError::usage("--password-stdin: no password on stdin"));
    }
    Ok(secret)
}

/// A secret piped on stdin for `flag`, which may be empty (e.g. to remove
/// a stored one): one line, without its line break(s).
pub fn read_stdin_line(flag: &str) -> Result<String, CliError> {
    let mut buf = String::new();
    std::io::stdin()
        .lock()
        .read_to_string(&mut buf)
        .map_err(|e| CliError::usage(format!("{flag}: cannot read stdin: {e}")))?;
    parse_stdin_line(flag, &buf)
}

fn parse_stdin_line(flag: &str, buf: &str) -> Result<String, CliError> {
    let line = buf.trim_end_matches(['\r', '\n']);
    if line.contains('\n') {
        return Err(CliError::usage(format!("{flag}: expected one line on stdin, got several")));
    }
    Ok(line.to_string())
}

fn open_tty() -> Result<std::fs::File, CliError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| CliError::usage("no terminal to prompt on: pass --username and --password-stdin"))
}

fn read_tty_line(tty: &std::fs::File) -> Result<String, CliError> {
    let mut line = String::new();
    let n = BufReader::new(tty)
        .read_line(&mut line)
        .map_err(|e| CliError::other(format!("cannot read from the terminal: {e}")))?;
    if n == 0 {
        return Err(CliError::usage("no input on the terminal"));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Prompts on the terminal and reads a line with echo.
pub fn prompt_line(prompt: &str) -> Result<String, CliError> {
    let mut tty = open_tty()?;
    let _ = tty.write_all(prompt.as_bytes());
    let _ = tty.flush();
    let line = read_tty_line(&tty)?;
    if line.trim().is_empty() {
        return Err(CliError::usage("no username given"));
    }
    Ok(line.trim().to_string())
}

/// Prompts on the terminal and reads a line without echo.
pub fn prompt_secret(prompt: &str) -> Result<String, CliError> {
    let mut tty = open_tty()?;
    let _ = tty.write_all(prompt.as_bytes());
    let _ = tty.flush();
    let guard = EchoOff::new(&tty);
    let line = read_tty_line(&tty);
    drop(guard);
    let _ = tty.write_all(b"\n");
    let line = line?;
    if line.is_empty() {
        return Err(CliError::usage("no password given"));
    }
    Ok(line)
}

/// Terminal echo off for as long as it lives.
struct EchoOff {
    #[cfg(unix)]
    saved: Option<(std::os::fd::RawFd, libc::termios)>,
}

impl EchoOff {
    #[cfg(unix)]
    fn new(tty: &std::fs::File) -> Self {
        use std::os::fd::AsRawFd;
        let fd = tty.as_raw_fd();
        // SAFETY: `fd` is an open descriptor for the life of `tty`; termios
        // is plain old data filled in by tcgetattr before it is read.
        unsafe {
            let mut term: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut term) != 0 {
                return Self { saved: None };
            }
            let saved = term;
            term.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(fd, libc::TCSANOW, &term) != 0 {
                return Self { saved: None };
            }
            Self { saved: Some((fd, saved)) }
        }
    }

    #[cfg(not(unix))]
    fn new(_tty: &std::fs::File) -> Self {
        Self {}
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some((fd, saved)) = self.saved.take() {
            // SAFETY: restores the settings read above on the same descriptor.
            unsafe {
                libc::tcsetattr(fd, libc::TCSANOW, &saved);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_secret_loses_the_line_break_only() {
        assert_eq!(parse_stdin_secret("pw\n").unwrap(), "pw");
        assert_eq!(parse_stdin_secret("pw\r\n").unwrap(), "pw");
        assert_eq!(parse_stdin_secret(" p w \n\n").unwrap(), " p w ");
        assert_eq!(parse_stdin_secret("pw").unwrap(), "pw");
        assert_eq!(parse_stdin_secret("").unwrap_err().code, 2);
        assert_eq!(parse_stdin_secret("\n").unwrap_err().code, 2);
        assert_eq!(parse_stdin_secret("a\nb\n").unwrap_err().code, 2);
        assert_eq!(parse_stdin_line("--api-key-stdin", "\n").unwrap(), "");
        assert_eq!(parse_stdin_line("--api-key-stdin", "ABSK1\n").unwrap(), "ABSK1");
        assert!(parse_stdin_line("--api-key-stdin", "a\nb").unwrap_err().message.contains("--api-key-stdin"));
    }
}
