//! `health-check`: the container health probe both binaries carry, since
//! their image has no shell or curl. A plain blocking HTTP/1.1 GET of a
//! loopback URL; success is a 200.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// The URL to probe for a listen address: an unspecified host (`0.0.0.0`,
/// `[::]`) is reached on loopback.
pub fn local_url(listen: &str, path: &str) -> String {
    let addr = match listen.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => {
            let lo = if a.is_ipv4() { "127.0.0.1".to_owned() } else { "[::1]".to_owned() };
            format!("{lo}:{}", a.port())
        }
        _ => listen.to_owned(),
    };
    format!("http://{addr}{path}")
}

/// `BINARY health-check [URL]`, when the arguments ask for it: probes URL,
/// or the `/ready` of the address in `listen_var` (else `default_listen`),
/// and says how it went as the process's exit code.
pub fn command(binary: &str, listen_var: &str, default_listen: &str) -> Option<std::process::ExitCode> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("health-check") {
        return None;
    }
    let url = args.next().unwrap_or_else(|| {
        let listen = std::env::var(listen_var).unwrap_or_else(|_| default_listen.to_owned());
        local_url(&listen, "/ready")
    });
    Some(match check(&url) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary} health-check: {e}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// GETs `url` (`http://host:port/path` only) and succeeds on a 200.
pub fn check(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs are probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    // The status line, however the answer is split into reads.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        let n = s.read(&mut buf).map_err(|e| format!("{url}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("{url}: {}", line.lines().next().unwrap_or("no answer")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_probed_on_loopback() {
        assert_eq!(local_url("0.0.0.0:8080", "/ready"), "http://127.0.0.1:8080/ready");
        assert_eq!(local_url("[::]:9", "/"), "http://[::1]:9/");
        assert_eq!(local_url("10.0.0.1:80", "/x"), "http://10.0.0.1:80/x");
    }

    #[test]
    fn a_200_passes_and_anything_else_fails() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ready", l.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            for answer in ["HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 503 Service Unavailable\r\n\r\n"] {
                let (mut c, _) = l.accept().unwrap();
                // The whole request is read first: closing with bytes
                // unread would reset the connection instead of answering.
                let mut request = Vec::new();
                let mut buf = [0u8; 256];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = c.read(&mut buf).unwrap();
                    assert!(n > 0, "the probe closed before its request was whole");
                    request.extend_from_slice(&buf[..n]);
                }
                // Split in two writes: the probe reads on to the end of the status line.
                let (first, rest) = answer.split_at(7);
                c.write_all(first.as_bytes()).unwrap();
                c.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20));
                c.write_all(rest.as_bytes()).unwrap();
            }
        });
        assert_eq!(check(&url), Ok(()));
        assert!(check(&url).unwrap_err().contains("503"));
        server.join().unwrap();
    }

    #[test]
    fn only_plain_http_is_probed() {
        assert!(check("https://127.0.0.1:1/").is_err());
    }
}
