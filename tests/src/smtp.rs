//! A real SMTP server on loopback that keeps what it receives, so mail flows are tested over
//! the wire exactly as they run against a production mail server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub recipients: Vec<String>,
    /// Headers and body as transmitted (dot-stuffing undone).
    pub data: String,
}

impl ReceivedMail {
    /// The message as a mail client reads it.
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(self.data.as_bytes())
            .expect("the mail is a MIME message")
    }

    /// The decoded subject.
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    /// The decoded plain-text part.
    pub fn text_body(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|text| text.into_owned())
            .unwrap_or_default()
    }

    /// The decoded HTML part, when the mail has one.
    pub fn html_body(&self) -> Option<String> {
        let parsed = self.parsed();
        (!parsed.html_body.is_empty())
            .then(|| parsed.body_html(0).map(|html| html.into_owned()))
            .flatten()
    }

    /// The raw header block, the decoded subject and the decoded text part.
    pub fn text(&self) -> String {
        let headers = self.data.split("\r\n\r\n").next().unwrap_or_default().to_owned();
        format!("{headers}\nSubject: {}\n\n{}", self.subject(), self.text_body())
    }

    /// The `token` query parameter of the first link in the text part.
    pub fn link_token(&self) -> String {
        let text = self.text_body();
        let start = text
            .find("token=")
            .map(|i| i + "token=".len())
            .expect("the mail has a link with a token");
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}

#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    arrived: Arc<Notify>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Self {
            port,
            mails: Arc::default(),
            arrived: Arc::new(Notify::new()),
        };
        let accepting = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let session = accepting.clone();
                tokio::spawn(async move {
                    let _ = session.serve(socket).await;
                });
            }
        });
        server
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    async fn serve(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 steward-tests ESMTP\r\n").await?;
        let mut recipients = Vec::new();
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            if command.starts_with("EHLO") || command.starts_with("HELO") {
                write.write_all(b"250-steward-tests\r\n250 8BITMIME\r\n").await?;
            } else if command.starts_with("MAIL FROM") {
                recipients.clear();
                write.write_all(b"250 OK\r\n").await?;
            } else if command.starts_with("RCPT TO") {
                let address = line.trim_end()[8..]
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned();
                recipients.push(address);
                write.write_all(b"250 OK\r\n").await?;
            } else if command == "DATA" {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                loop {
                    let mut body_line = String::new();
                    if lines.read_line(&mut body_line).await? == 0 {
                        return Ok(());
                    }
                    if body_line == ".\r\n" || body_line == ".\n" {
                        break;
                    }
                    data.push_str(body_line.strip_prefix('.').unwrap_or(&body_line));
                }
                self.mails.lock().unwrap().push(ReceivedMail {
                    recipients: std::mem::take(&mut recipients),
                    data,
                });
                self.arrived.notify_waiters();
                write.write_all(b"250 queued\r\n").await?;
            } else if command == "QUIT" {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                write.write_all(b"250 OK\r\n").await?;
            }
        }
    }

    pub fn received(&self) -> Vec<ReceivedMail> {
        self.mails.lock().unwrap().clone()
    }

    /// Waits for the `nth` (1-based) mail to `recipient`.
    pub async fn wait_for(&self, recipient: &str, nth: usize) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.arrived.notified();
            let found: Vec<ReceivedMail> = self
                .received()
                .into_iter()
                .filter(|mail| mail.recipients.iter().any(|r| r == recipient))
                .collect();
            if found.len() >= nth {
                return found[nth - 1].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no mail #{nth} to {recipient} within 10 s"
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }
}
