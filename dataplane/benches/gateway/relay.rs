//! A bare TCP relay in a process of its own: the floor of the latency
//! figures. It forwards bytes between the load generator and a double (TLS
//! stays end to end) and does nothing else, so what it adds is what any
//! proxy hop costs on this machine: an idle thread woken on the way in and
//! again on the way back, and four more copies through loopback. The bench
//! binary becomes the relay when started with [`FLAG`].

use std::process::ExitCode;

use tokio::net::{TcpListener, TcpStream};

/// `gateway --relay HOST:PORT`: relay to `HOST:PORT` until killed.
pub const FLAG: &str = "--relay";
/// The line the relay prints once it listens, before its address.
pub const LISTENING: &str = "relay listening on ";

/// In the relay process: one thread, one runtime, a task per connection.
pub fn serve(upstream: &str) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served: std::io::Result<()> = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("{LISTENING}{}", listener.local_addr()?);
        loop {
            let (mut client, _) = listener.accept().await?;
            let upstream = upstream.to_owned();
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                let Ok(mut up) = TcpStream::connect(&upstream).await else { return };
                let _ = up.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            });
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay: {e}");
            ExitCode::FAILURE
        }
    }
}
