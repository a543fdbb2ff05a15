//! A hostile HTTP server on loopback: it redirects, streams an endless body, announces a huge
//! one, sends its headers one byte a second, or answers what a proxy would (an HTML error page,
//! an empty 5xx) — and records every request it gets, so a test
//! can tell whether a credential reached it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does with each request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers `{}` (a server worth stealing from).
    Record,
    /// 307 to this URL (the request's path appended).
    Redirect(String),
    /// 200 with a chunked body that never ends.
    Endless,
    /// 200 announcing a 10 GiB body, then streaming.
    HugeLength,
    /// The status line, then one byte of a header a second, forever.
    SlowHeaders,
    /// This status, content type and body, whatever was asked.
    Answer {
        status: u16,
        content_type: &'static str,
        body: &'static str,
    },
}

pub struct Hostile {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Hostile {
    pub fn start(behaviour: Behaviour) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let behaviour = behaviour.clone();
                let recorded = Arc::clone(&recorded);
                std::thread::spawn(move || serve(stream, &behaviour, &recorded));
            }
        });
        Hostile { address, requests }
    }

    /// The heads (request line and headers) of every request received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, behaviour: &Behaviour, recorded: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        let _ = std::io::Read::read_exact(&mut reader, &mut body);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        recorded.lock().unwrap().push(head);
        let result = match behaviour {
            Behaviour::Record => write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
            ),
            Behaviour::Redirect(to) => write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}{path}\r\nContent-Length: 0\r\n\r\n"
            ),
            Behaviour::Endless => endless(&mut stream, None),
            Behaviour::HugeLength => endless(&mut stream, Some(10 << 30)),
            Behaviour::SlowHeaders => slow_headers(&mut stream),
            Behaviour::Answer {
                status,
                content_type,
                body,
            } => write!(
                stream,
                "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        };
        if result.is_err() {
            return;
        }
    }
}

fn endless(stream: &mut TcpStream, length: Option<u64>) -> std::io::Result<()> {
    let chunk = vec![b'a'; 64 * 1024];
    match length {
        Some(length) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
            )?;
            loop {
                stream.write_all(&chunk)?;
            }
        }
        None => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )?;
            loop {
                write!(stream, "{:x}\r\n", chunk.len())?;
                stream.write_all(&chunk)?;
                stream.write_all(b"\r\n")?;
            }
        }
    }
}

fn slow_headers(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ")?;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        stream.write_all(b"a")?;
    }
}
