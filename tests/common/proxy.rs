//! A TCP proxy between Mesher and PostgreSQL that a test can cut and
//! restore: a real outage as Mesher sees one (connections reset, new ones
//! refused), with PostgreSQL itself untouched, so the test can still count
//! what was stored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    /// Where the proxy listens.
    addr: SocketAddr,
    /// Whether new connections are refused.
    cut: Arc<AtomicBool>,
    /// Bumped on every cut: each relay ends (resetting both sides) when it
    /// changes.
    generation: watch::Sender<u64>,
}

impl Proxy {
    /// A proxy to the PostgreSQL that `database_url` names, listening on a
    /// free port of this host. It runs on a thread of its own, so a test
    /// may block its own thread (waiting for a child process, say) without
    /// stalling the proxy. The thread lives as long as the test binary.
    pub fn start(database_url: &str) -> Proxy {
        let target = target_addr(database_url);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (refusing, relays) = (cut.clone(), generation.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                while let Ok((inbound, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        reset(inbound);
                        continue;
                    }
                    tokio::spawn(relay(inbound, target, relays.subscribe()));
                }
            });
        });
        Proxy {
            addr,
            cut,
            generation,
        }
    }

    /// `database_url` with its host and port replaced by the proxy's.
    pub fn url(&self, database_url: &str) -> String {
        let (scheme, rest) = database_url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let user = authority.rfind('@').map_or("", |at| &authority[..=at]);
        format!("{scheme}://{user}{}{path}", self.addr)
    }

    /// Resets every open connection and refuses new ones until
    /// [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Closes `stream` with a reset rather than an orderly shutdown, as a
/// crashed server or a dropped route does.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn relay(mut inbound: TcpStream, target: SocketAddr, mut cuts: watch::Receiver<u64>) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return reset(inbound);
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cuts.changed() => {
            reset(inbound);
            reset(outbound);
        }
    }
}

fn target_addr(database_url: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let config: tokio_postgres::Config = database_url.parse().expect("a PostgreSQL URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the proxy needs PostgreSQL on TCP, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host.as_str(), port)
        .to_socket_addrs()
        .expect("resolving PostgreSQL's host")
        .next()
        .expect("an address for PostgreSQL's host")
}
