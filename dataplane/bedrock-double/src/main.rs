//! `ccag-bedrock-double`: serves the Bedrock double on `DOUBLE_ADDR`
//! (default `127.0.0.1:0`) and prints `listening on http://IP:PORT`.

use std::io::Write as _;
use std::net::SocketAddr;

use ccag_bedrock_double::{spawn, DoubleConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr_text = std::env::var("DOUBLE_ADDR").unwrap_or_else(|_| "127.0.0.1:0".to_string());
    let addr: SocketAddr = addr_text.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("DOUBLE_ADDR={addr_text:?}: {e}"))
    })?;
    let double = spawn(addr, DoubleConfig::from_env()).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", double.url())?;
        out.flush()?;
    }
    std::future::pending::<()>().await;
    drop(double);
    Ok(())
}
