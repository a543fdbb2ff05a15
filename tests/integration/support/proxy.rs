//! A loopback TCP proxy that can fail on demand: an outage without stopping (and losing) the
//! server behind it, and without giving its port away. It also counts the requests in flight
//! through it, and can hold each answer back, so that a test sees concurrency happen rather
//! than infer it.
//!
//! A request is in flight from its first byte until the first byte of its answer (held back
//! by the delay): HTTP/1.1 clients send no second request on a connection before the answer
//! to the first (no pipelining), so bytes from the client after an answer start a new one.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A proxy to one target address.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
    requests: Arc<InFlight>,
    /// The head (request line and headers) of each request whose answer has come back from
    /// the target, in order: the answer may still be held back.
    answered: Arc<Mutex<Vec<String>>>,
    /// Requests whose head contains the text are answered with the response instead of being
    /// passed on (the connection is closed after it).
    instead: Arc<Mutex<Vec<(String, String)>>>,
}

/// The requests in flight now, the most there were at one moment, and how long each answer is
/// held back.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
    delay_ms: AtomicU64,
}

impl InFlight {
    fn start(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn answer(&self) {
        thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
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
        let requests = Arc::new(InFlight::default());
        let answered: Arc<Mutex<Vec<String>>> = Arc::default();
        let instead: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let (up_flag, open_list, count, in_flight, answers, canned) = (
            Arc::clone(&up),
            Arc::clone(&open),
            Arc::clone(&accepted),
            Arc::clone(&requests),
            Arc::clone(&answered),
            Arc::clone(&instead),
        );
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
                // Whether this connection's request awaits its answer, and its head.
                let waiting = Arc::new(AtomicBool::new(false));
                let head: Arc<Mutex<String>> = Arc::default();
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (asking, requests, asked) = (
                    Arc::clone(&waiting),
                    Arc::clone(&in_flight),
                    Arc::clone(&head),
                );
                let (canned, mut c_answer) = (Arc::clone(&canned), client.try_clone().unwrap());
                thread::spawn(move || {
                    forward(&mut c_read, &mut s_write, |chunk| {
                        if asking.swap(true, Ordering::SeqCst) {
                            return true;
                        }
                        let request = request_head(chunk);
                        let answer = canned
                            .lock()
                            .unwrap()
                            .iter()
                            .find(|(wanted, _)| request.contains(wanted.as_str()))
                            .map(|(_, answer)| answer.clone());
                        if let Some(answer) = answer {
                            let _ = c_answer.write_all(answer.as_bytes());
                            let _ = c_answer.shutdown(Shutdown::Both);
                            return false;
                        }
                        *asked.lock().unwrap() = request;
                        requests.start();
                        true
                    });
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                let (requests, answers) = (Arc::clone(&in_flight), Arc::clone(&answers));
                thread::spawn(move || {
                    forward(&mut s_read, &mut c_write, |_| {
                        if waiting.swap(false, Ordering::SeqCst) {
                            answers.lock().unwrap().push(head.lock().unwrap().clone());
                            requests.answer();
                        }
                        true
                    });
                    // A connection cut before its answer: no longer in flight either.
                    if waiting.swap(false, Ordering::SeqCst) {
                        requests.now.fetch_sub(1, Ordering::SeqCst);
                    }
                    let _ = c_write.shutdown(Shutdown::Write);
                });
            }
        });
        Proxy {
            addr,
            up,
            open,
            accepted,
            requests,
            answered,
            instead,
        }
    }

    /// How many connections clients have opened through the proxy so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Holds the answer to each request back by `delay` from now on, so that requests sent
    /// together are seen in flight together.
    pub fn delay_answers(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap();
        self.requests.delay_ms.store(millis, Ordering::SeqCst);
    }

    /// From now on answers each request whose head contains `wanted` with `status` and a JSON
    /// `body` instead of passing it on, and closes that connection: a server that throttles.
    pub fn answer_instead(&self, wanted: &str, status: &str, body: &str) {
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        self.instead
            .lock()
            .unwrap()
            .push((wanted.to_owned(), answer));
    }

    /// Waits until the target has answered a request whose head (request line and headers)
    /// contains `wanted` (the answer may still be held back by [`Proxy::delay_answers`]): the
    /// target has done what the request asked.
    #[track_caller]
    pub fn wait_for_answer(&self, wanted: &str, timeout: Duration) {
        super::poll_until(
            timeout,
            &format!("an answer to a request with {wanted:?}"),
            || {
                self.answered
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|head| head.contains(wanted))
            },
        );
    }

    /// The most requests that were in flight through the proxy at one moment.
    pub fn most_in_flight(&self) -> usize {
        self.requests.most.load(Ordering::SeqCst)
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

/// The head of a request (request line and headers) from its first chunk; never its body,
/// which may hold a secret.
fn request_head(chunk: &[u8]) -> String {
    let text = String::from_utf8_lossy(chunk);
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

/// Copies `from` to `to` until either ends, calling `before` with each chunk ahead of passing it
/// on; `before` returning false ends the copy.
fn forward(from: &mut TcpStream, to: &mut TcpStream, mut before: impl FnMut(&[u8]) -> bool) {
    let mut buffer = [0; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if !before(&buffer[..n]) {
                    return;
                }
                if to.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
