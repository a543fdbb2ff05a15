//! A loopback TCP proxy that can fail on demand: an outage without stopping (and losing) the
//! server behind it, and without giving its port away.

use std::io::copy;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A proxy to one target address.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// Starts forwarding to `target` (`host:port`).
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let target = target.to_owned();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (up_flag, open_list, count) =
            (Arc::clone(&up), Arc::clone(&open), Arc::clone(&accepted));
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                if !up_flag.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                {
                    let mut open = open_list.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || {
                    let _ = copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                thread::spawn(move || {
                    let _ = copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Write);
                });
            }
        });
        Proxy {
            addr,
            up,
            open,
            accepted,
        }
    }

    /// How many connections clients have opened through the proxy so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Refuses new connections and cuts the open ones.
    pub fn fail(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Forwards again.
    pub fn recover(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
