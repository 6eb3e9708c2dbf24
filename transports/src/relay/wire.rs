//! The relay's frames (PROTOCOL.md, §10): extension-range tags, so that
//! they are never mistaken for a Tether session's frames.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::Tag;

/// A registered server's public name at a relay: what clients connect to.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerId(pub u64);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server-{self}")
    }
}

impl std::str::FromStr for ServerId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix("server-").unwrap_or(s);
        u64::from_str_radix(digits, 16)
            .map(ServerId)
            .map_err(|_| format!("a server id is 16 hex digits, not {s:?}"))
    }
}

/// The secret a relay issues to a server, which lets it register again:
/// 128 random bits. `==` compares in constant time.
#[derive(Clone)]
pub struct Credential(pub [u8; 16]);

impl PartialEq for Credential {
    fn eq(&self, other: &Credential) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Credential {}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.write_str("Credential(…)")
    }
}

impl Credential {
    /// A fresh credential from the operating system's random source.
    pub fn random() -> std::io::Result<Credential> {
        let mut bytes = [0_u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Credential(bytes))
    }

    /// Compares in constant time, so that timing says nothing of a guess.
    pub fn matches(&self, other: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        other.len() == self.0.len() && bool::from(self.0.ct_eq(other))
    }

    /// Its 32 hex digits, for a person to keep.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// From 32 hex digits.
    pub fn from_hex(text: &str) -> Option<Credential> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0_u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Credential(bytes))
    }
}

/// The tags of the relay's frames.
pub(crate) mod tag {
    use crate::frame::Tag;
    pub(crate) const REGISTER: Tag = Tag(0x8000_0101);
    pub(crate) const REGISTERED: Tag = Tag(0x8000_0102);
    pub(crate) const CONNECT: Tag = Tag(0x8000_0103);
    pub(crate) const CONNECTED: Tag = Tag(0x8000_0104);
    pub(crate) const REFUSED: Tag = Tag(0x8000_0105);
    pub(crate) const OPEN: Tag = Tag(0x8000_0106);
    pub(crate) const DATA: Tag = Tag(0x8000_0107);
    pub(crate) const CLOSE: Tag = Tag(0x8000_0108);
}

/// One frame of the relay's own protocol. `Debug` never prints a
/// credential.
#[derive(Clone, PartialEq, Eq)]
pub enum RelayFrame {
    /// The first frame of a server's connection: register, with the
    /// credential of an earlier registration or none for a new one.
    Register {
        /// The credential, 16 bytes; none to be issued one.
        credential: Option<Vec<u8>>,
    },
    /// The relay's answer to a Register.
    Registered {
        /// The server id clients connect to.
        server: ServerId,
        /// The credential to register with again.
        credential: Credential,
    },
    /// The first frame of a client's connection: reach that server.
    Connect {
        /// The server.
        server: ServerId,
    },
    /// The relay's answer to a Connect: what follows is the session.
    Connected,
    /// The relay's refusal of a Register or Connect, or why it closes a
    /// connection; the connection closes after it.
    Refused {
        /// Why.
        reason: String,
    },
    /// To a server: a client connected on `link`; its session starts.
    Open {
        /// The link.
        link: u32,
    },
    /// On a server's connection: one frame of the session on `link`.
    Data {
        /// The link.
        link: u32,
        /// The session's frame, whole.
        frame: Bytes,
    },
    /// On a server's connection: the session on `link` is over.
    Close {
        /// The link.
        link: u32,
        /// Why.
        reason: String,
    },
}

impl fmt::Debug for RelayFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayFrame::Register { credential } => f
                .debug_struct("Register")
                .field("credential", &credential.as_ref().map(|_| "…"))
                .finish(),
            RelayFrame::Registered { server, .. } => f
                .debug_struct("Registered")
                .field("server", server)
                .finish_non_exhaustive(),
            RelayFrame::Connect { server } => {
                f.debug_struct("Connect").field("server", server).finish()
            }
            RelayFrame::Connected => f.write_str("Connected"),
            RelayFrame::Refused { reason } => {
                f.debug_struct("Refused").field("reason", reason).finish()
            }
            RelayFrame::Open { link } => f.debug_struct("Open").field("link", link).finish(),
            RelayFrame::Data { link, frame } => f
                .debug_struct("Data")
                .field("link", link)
                .field("len", &frame.len())
                .finish(),
            RelayFrame::Close { link, reason } => f
                .debug_struct("Close")
                .field("link", link)
                .field("reason", reason)
                .finish(),
        }
    }
}

/// Why bytes are not a relay frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed relay frame: {0}")]
pub struct Malformed(pub &'static str);

impl RelayFrame {
    /// Its bytes: the tag, then the body.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        let put_string = |out: &mut BytesMut, s: &str| {
            put_varint(out, s.len() as u64);
            out.put_slice(s.as_bytes());
        };
        match self {
            RelayFrame::Register { credential } => {
                out.put_u32_le(tag::REGISTER.0);
                match credential {
                    None => out.put_u8(0),
                    Some(c) => {
                        out.put_u8(1);
                        put_varint(&mut out, c.len() as u64);
                        out.put_slice(c);
                    }
                }
            }
            RelayFrame::Registered { server, credential } => {
                out.put_u32_le(tag::REGISTERED.0);
                out.put_u64_le(server.0);
                put_varint(&mut out, 16);
                out.put_slice(&credential.0);
            }
            RelayFrame::Connect { server } => {
                out.put_u32_le(tag::CONNECT.0);
                out.put_u64_le(server.0);
            }
            RelayFrame::Connected => out.put_u32_le(tag::CONNECTED.0),
            RelayFrame::Refused { reason } => {
                out.put_u32_le(tag::REFUSED.0);
                put_string(&mut out, reason);
            }
            RelayFrame::Open { link } => {
                out.put_u32_le(tag::OPEN.0);
                put_varint(&mut out, u64::from(*link));
            }
            RelayFrame::Data { link, frame } => {
                out.reserve(4 + 5 + frame.len());
                out.put_u32_le(tag::DATA.0);
                put_varint(&mut out, u64::from(*link));
                out.put_slice(frame);
            }
            RelayFrame::Close { link, reason } => {
                out.put_u32_le(tag::CLOSE.0);
                put_varint(&mut out, u64::from(*link));
                put_string(&mut out, reason);
            }
        }
        out.freeze()
    }

    /// The relay frame in `frame`; `Ok(None)` if its tag is not one of the
    /// relay's (a session's frame, on a client's connection).
    pub fn decode(frame: &Bytes) -> Result<Option<RelayFrame>, Malformed> {
        let Some(tag) = frame.get(..4) else {
            return Err(Malformed("shorter than a tag"));
        };
        let tag = Tag(u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]));
        let mut r = Reader {
            bytes: frame,
            pos: 4,
        };
        let decoded = match tag {
            tag::REGISTER => RelayFrame::Register {
                credential: match r.byte()? {
                    0 => None,
                    1 => Some(r.bytes()?.to_vec()),
                    _ => return Err(Malformed("an option tag other than 0 or 1")),
                },
            },
            tag::REGISTERED => {
                let server = ServerId(r.u64()?);
                let bytes = r.bytes()?;
                let credential = Credential(
                    bytes
                        .try_into()
                        .map_err(|_| Malformed("a credential of other than 16 bytes"))?,
                );
                RelayFrame::Registered { server, credential }
            }
            tag::CONNECT => RelayFrame::Connect {
                server: ServerId(r.u64()?),
            },
            tag::CONNECTED => RelayFrame::Connected,
            tag::REFUSED => RelayFrame::Refused {
                reason: r.string()?,
            },
            tag::OPEN => RelayFrame::Open { link: r.link()? },
            tag::DATA => {
                let link = r.link()?;
                let frame = frame.slice(r.pos..);
                return Ok(Some(RelayFrame::Data { link, frame }));
            }
            tag::CLOSE => RelayFrame::Close {
                link: r.link()?,
                reason: r.string()?,
            },
            _ => return Ok(None),
        };
        if r.pos != frame.len() {
            return Err(Malformed("bytes after the body"));
        }
        Ok(Some(decoded))
    }
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let b = *self.bytes.get(self.pos).ok_or(Malformed("ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self, max_bytes: usize) -> Result<u64, Malformed> {
        let mut v = 0_u64;
        for i in 0..max_bytes {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("a varint too long"))
    }

    fn link(&mut self) -> Result<u32, Malformed> {
        u32::try_from(self.varint(5)?).map_err(|_| Malformed("a link over 32 bits"))
    }

    fn u64(&mut self) -> Result<u64, Malformed> {
        let end = self.pos + 8;
        let b = self
            .bytes
            .get(self.pos..end)
            .ok_or(Malformed("ends early"))?;
        self.pos = end;
        let mut le = [0_u8; 8];
        le.copy_from_slice(b);
        Ok(u64::from_le_bytes(le))
    }

    fn bytes(&mut self) -> Result<&[u8], Malformed> {
        let len = usize::try_from(self.varint(5)?).map_err(|_| Malformed("a length"))?;
        let end = self.pos.checked_add(len).ok_or(Malformed("a length"))?;
        let b = self
            .bytes
            .get(self.pos..end)
            .ok_or(Malformed("ends early"))?;
        self.pos = end;
        Ok(b)
    }

    fn string(&mut self) -> Result<String, Malformed> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| Malformed("a string not UTF-8"))
    }
}
