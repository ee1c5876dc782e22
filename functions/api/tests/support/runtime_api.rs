//! A minimal Lambda Runtime API on 127.0.0.1 for `ff` started as a Lambda function: it hands out
//! invocation events one by one and reports what the function posts back. Shared by the Lambda
//! test and the cold-start benchmark (each includes this file as a module).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the function posted back for one invocation.
#[derive(Debug)]
pub enum Posted {
    Response(Value),
    Error(Value),
}

/// Serves `GET /invocation/next` from `events` in order (then never answers again, as a Runtime API
/// with nothing to do), and reports each `POST .../response` or `.../error`.
pub fn runtime_api(events: Vec<Value>, posted: mpsc::Sender<Posted>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the Runtime API");
    let address = listener.local_addr().expect("its address").to_string();
    // One queue for every connection: the runtime client may poll on any of them.
    let queue = Arc::new(Mutex::new(events.into_iter().enumerate().collect::<VecDeque<_>>()));
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (queue, posted) = (Arc::clone(&queue), posted.clone());
            std::thread::spawn(move || serve_connection(stream, &queue, &posted));
        }
    });
    address
}

fn serve_connection(stream: TcpStream, queue: &Mutex<VecDeque<(usize, Value)>>, posted: &mpsc::Sender<Posted>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
        if path.ends_with("/invocation/next") {
            let next = queue.lock().map(|mut queue| queue.pop_front()).unwrap_or(None);
            let Some((index, event)) = next else {
                // Nothing more to invoke: keep the function waiting until the test kills it.
                std::thread::sleep(Duration::from_secs(3600));
                return;
            };
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() + 60_000;
            let body = event.to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Lambda-Runtime-Aws-Request-Id: request-{index}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:eu-west-1:123456789012:function:ff\r\n\r\n",
                body.len()
            );
            let _ = writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(body.as_bytes()));
            continue;
        }
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let report = if path.ends_with("/response") { Posted::Response(value) } else { Posted::Error(value) };
        let _ = posted.send(report);
        let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    }
}
