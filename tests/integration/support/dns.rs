//! A DNS server for one zone, so that a test can show how the static (musl) binary resolves a
//! name through /etc/resolv.conf: a nameserver and a search domain, as Kubernetes writes them.
//!
//! resolv.conf has no port syntax, so the server listens on UDP port 53, but of a loopback
//! address of its own (127.53.x.y, picked at random until one binds): parallel tests and other
//! servers on the machine never share it. It answers A queries for names in its zone with
//! 127.0.0.1, AAAA queries there with no record, and any other name with NXDOMAIN; it remembers
//! the names asked for.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Dns {
    /// The address it listens on, port 53.
    pub address: Ipv4Addr,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    /// Starts a server answering for `zone` (e.g. `envoke.test`).
    pub fn start(zone: &str) -> Dns {
        let (address, socket) = (0..50)
            .find_map(|_| {
                let address = Ipv4Addr::new(127, 53, fastrand::u8(1..255), fastrand::u8(1..255));
                UdpSocket::bind((address, 53)).ok().map(|s| (address, s))
            })
            .expect("no loopback address with a free port 53");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let zone = format!(".{}", zone.to_ascii_lowercase());
        let thread = {
            let (asked, stop) = (Arc::clone(&asked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut query = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = socket.recv_from(&mut query) else {
                        continue;
                    };
                    if let Some((name, answer)) = answer(&query[..len], &zone) {
                        asked.lock().unwrap().push(name);
                        let _ = socket.send_to(&answer, from);
                    }
                }
            })
        };
        Dns {
            address,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    /// The names asked for so far, lower case, without the final dot.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The name asked for and the answer to one query (RFC 1035 §4); `None` for what is not a
/// standard query with one question.
fn answer(query: &[u8], zone: &str) -> Option<(String, Vec<u8>)> {
    if query.len() < 12 || query[2] & 0x80 != 0 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let question_end = at + 4;
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let name = labels.join(".");
    let in_zone = format!(".{name}").ends_with(zone);
    let mut response = Vec::with_capacity(question_end + 16);
    response.extend_from_slice(&query[..2]);
    // QR, the query's RD, RA; NOERROR or NXDOMAIN.
    response.push(0x80 | (query[2] & 0x01));
    response.push(if in_zone { 0x80 } else { 0x83 });
    let with_address = in_zone && qtype == 1;
    response.extend_from_slice(&[0, 1, 0, u8::from(with_address), 0, 0, 0, 0]);
    response.extend_from_slice(query.get(12..question_end)?);
    if with_address {
        // The question's name (a pointer to offset 12), A, IN, a minute, 127.0.0.1.
        response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    Some((name, response))
}
