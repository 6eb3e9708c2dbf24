//! `tether`: run a relay, see what a node publishes, call it with JSON,
//! and dump its tables.
//!
//! ```text
//! tether relay --listen 127.0.0.1:7700 --ws 127.0.0.1:7701
//! tether inspect tcp://127.0.0.1:7000
//! tether call ws://127.0.0.1:7001/ counter add '[5]'
//! tether dump tcp://127.0.0.1:7000 --credential admin:s3cret
//! ```
//!
//! Addresses: `tcp://HOST:PORT` (or `HOST:PORT`), `ws://HOST:PORT/PATH`,
//! `quic://HOST:PORT` (with `--cert FILE`, the server's certificate in
//! DER, and `--server-name`), and `relay://HOST:PORT/SERVER_ID` (the relay's
//! TCP address and a registered server's id).

mod json;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::Value as Json;
use tether::ext::schema::WireSchema;
use tether::introspect::{Dump, IntrospectClient, NAME as INTROSPECT};
use tether::transports::frame::{WireTypes, WireView, abstraction_from_code};
use tether::transports::relay::{Relay, RelayConfig, ServerId};
use tether::transports::{Config, Peer, quic, relay, tcp, ws};
use tether::{Context, Error, Node, Selector, Value};

/// The `tether` command.
#[derive(Parser, Debug)]
#[command(
    name = "tether",
    version,
    about = "Run a Tether relay, inspect a node, call its methods with JSON, dump its tables."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How to reach a node.
#[derive(clap::Args, Debug)]
struct Reach {
    /// tcp://HOST:PORT, ws://HOST:PORT/, quic://HOST:PORT or relay://HOST:PORT/SERVER_ID
    address: String,
    /// PRINCIPAL:SECRET to say who you are in the Hello.
    #[arg(long)]
    credential: Option<String>,
    /// For quic://: the server's certificate (DER) to trust.
    #[arg(long)]
    cert: Option<std::path::PathBuf>,
    /// For quic://: the name the certificate is for.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Give up on a call after this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a relay for peers that cannot listen (browsers), until Ctrl-C.
    Relay {
        /// Where to listen on TCP (servers and clients that speak TCP).
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: String,
        /// Where to listen for WebSocket connections (browsers), if at all.
        #[arg(long)]
        ws: Option<std::net::SocketAddr>,
        /// Clients per registered server.
        #[arg(long, default_value_t = 256)]
        max_clients: usize,
        /// Also stop when standard input closes (for scripts and tests that
        /// run the relay as a child process).
        #[arg(long)]
        until_stdin_closes: bool,
    },
    /// Shows what a node publishes: names, each one's view, methods and schemas.
    Inspect {
        #[command(flatten)]
        reach: Reach,
    },
    /// Calls METHOD of what a node publishes under NAME, with JSON arguments.
    Call {
        #[command(flatten)]
        reach: Reach,
        /// The published name.
        name: String,
        /// The method.
        method: String,
        /// The arguments as a JSON array (one element per parameter).
        #[arg(default_value = "[]")]
        args: String,
    },
    /// Dumps a node's connections, tables, running calls and transactions
    /// (from the introspection object its owner publishes).
    Dump {
        #[command(flatten)]
        reach: Reach,
    },
}

/// An error kind by the name PROTOCOL.md's table (§4) gives it.
fn kind_name(kind: tether::ErrorKind) -> &'static str {
    match kind {
        tether::ErrorKind::Failed => "failed",
        other => other.as_str(),
    }
}

/// A failure to report: a message and, for a call, its error kind.
struct Failure(String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(format!("{}: {}", kind_name(e.kind()), e.message()))
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure(e)
    }
}

impl From<&str> for Failure {
    fn from(e: &str) -> Self {
        Failure(e.to_string())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init()
        .ok();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Relay {
            listen,
            ws,
            max_clients,
            until_stdin_closes,
        } => run_relay(&listen, ws, max_clients, until_stdin_closes).await,
        Command::Inspect { reach } => inspect(&reach).await,
        Command::Call {
            reach,
            name,
            method,
            args,
        } => call(&reach, &name, &method, &args).await,
        Command::Dump { reach } => dump(&reach).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_relay(
    listen: &str,
    ws: Option<std::net::SocketAddr>,
    max_clients: usize,
    until_stdin_closes: bool,
) -> Result<(), Failure> {
    let config = RelayConfig {
        max_clients_per_server: max_clients,
        ..RelayConfig::default()
    };
    let relay = Relay::serve(listen, ws, config)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("relay tcp {}", relay.tcp_addr());
    if let Some(ws) = relay.ws_addr() {
        println!("relay ws://{ws}/");
    }
    // Runs until Ctrl-C, or, if asked, until standard input closes. Not by
    // default: a relay started in the background or by a service manager
    // has its standard input closed from the start.
    let stdin_closed = async {
        if !until_stdin_closes {
            return std::future::pending::<()>().await;
        }
        use tokio::io::AsyncReadExt;
        let mut buf = [0_u8; 64];
        let mut stdin = tokio::io::stdin();
        while stdin.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = stdin_closed => {}
    }
    relay.close().await;
    Ok(())
}

async fn open(reach: &Reach) -> Result<Peer, Failure> {
    let node = Node::new();
    let mut config = Config::new();
    if let Some(credential) = &reach.credential {
        let (principal, secret) = credential
            .split_once(':')
            .ok_or("--credential takes PRINCIPAL:SECRET")?;
        config = config.credentials(principal, secret);
    }
    let address = reach.address.as_str();
    let peer = if let Some(rest) = address.strip_prefix("relay://") {
        let (relay, server) = rest
            .trim_end_matches('/')
            .rsplit_once('/')
            .ok_or("relay://HOST:PORT/SERVER_ID")?;
        let server: ServerId = server.parse()?;
        relay::connect(&node, relay, server, config).await?
    } else if address.starts_with("ws://") || address.starts_with("wss://") {
        ws::connect(&node, address, config).await?
    } else if let Some(rest) = address.strip_prefix("quic://") {
        let path = reach
            .cert
            .as_ref()
            .ok_or("quic:// needs --cert FILE (the server's certificate, DER)")?;
        let cert = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        quic::connect_trusting(
            &node,
            rest.trim_end_matches('/'),
            &reach.server_name,
            &cert,
            config,
        )
        .await?
    } else {
        let rest = address.strip_prefix("tcp://").unwrap_or(address);
        tcp::connect(&node, rest.trim_end_matches('/'), config).await?
    };
    tokio::time::timeout(Duration::from_millis(reach.timeout_ms), peer.opened())
        .await
        .map_err(|_| format!("no Hello from {address} within {} ms", reach.timeout_ms))??;
    Ok(peer)
}

fn schema_of(bytes: &[u8]) -> Result<WireSchema, Failure> {
    let mut input = bytes;
    let schema = WireSchema::decode(&mut input)
        .map_err(|e| Failure(format!("a schema the node sent: {e}")))?;
    if !input.is_empty() {
        return Err(Failure(
            "a schema the node sent: bytes after the schema".into(),
        ));
    }
    Ok(schema)
}

fn signature(name: &str, types: &WireTypes) -> Result<String, Failure> {
    let params = types
        .params
        .iter()
        .map(|(p, s)| Ok(format!("{p}: {}", schema_of(s)?)))
        .collect::<Result<Vec<_>, Failure>>()?;
    let mut out = format!(
        "{name}({}) -> {}",
        params.join(", "),
        schema_of(&types.result)?
    );
    if let Some(e) = &types.error {
        out.push_str(&format!(" ! {}", schema_of(e)?));
    }
    Ok(out)
}

fn print_view(name: &str, view: &WireView) -> Result<(), Failure> {
    println!(
        "{name}: {} (fingerprint {:016x}), view {:?} version {}",
        view.interface, view.fingerprint, view.view, view.version
    );
    for m in &view.methods {
        let kind = abstraction_from_code(m.kind);
        match &m.types {
            Some(types) => println!("  {:<60} {kind}", signature(&m.name, types)?),
            None => println!("  {:<60} {kind}", format!("{}(…) (no schema)", m.name)),
        }
    }
    Ok(())
}

async fn inspect(reach: &Reach) -> Result<(), Failure> {
    let peer = open(reach).await?;
    let names = peer.names().await?;
    println!(
        "{} at {}: {} name{}",
        peer.peer_node().map(|n| n.to_string()).unwrap_or_default(),
        reach.address,
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    );
    for name in &names {
        match peer.lookup_ref(name).await {
            Ok(reference) => print_view(name, &*peer.description(&reference).await?)?,
            Err(e) => println!("{name}: {}: {}", kind_name(e.kind()), e.message()),
        }
    }
    peer.close().await;
    Ok(())
}

async fn call(reach: &Reach, name: &str, method: &str, args: &str) -> Result<(), Failure> {
    let args: Json =
        serde_json::from_str(args).map_err(|e| format!("the arguments are not JSON: {e}"))?;
    let Json::Array(args) = args else {
        return Err(Failure(
            "the arguments are a JSON array, one element per parameter".into(),
        ));
    };
    let peer = open(reach).await?;
    let reference = peer.lookup_ref(name).await?;
    let view = peer.description(&reference).await?;
    let Some(m) = view.methods.iter().find(|m| m.name == method) else {
        let offered: Vec<&str> = view.methods.iter().map(|m| m.name.as_str()).collect();
        return Err(Failure(format!(
            "unknown method: {name} ({}) offers {}",
            view.interface,
            offered.join(", ")
        )));
    };
    let types = m.types.as_ref().ok_or("the method has no wire schema")?;
    if args.len() != types.params.len() {
        return Err(Failure(format!(
            "bad arguments: {method} takes {} ({}), got {}",
            types.params.len(),
            signature(method, types)?,
            args.len()
        )));
    }
    let mut bytes = Vec::new();
    for ((param, schema), value) in types.params.iter().zip(&args) {
        let encoded = json::encode(&schema_of(schema)?, value)
            .map_err(|e| format!("bad arguments: {param}: {e}"))?;
        bytes.extend_from_slice(&encoded);
    }
    let deadline = Instant::now() + Duration::from_millis(reach.timeout_ms);
    let context = Context::new().with_deadline(deadline);
    // A selector names a method for the process's life: one leaked name.
    let selector = Selector::new(Box::leak(method.to_string().into_boxed_str()));
    let reply = reference
        .call(selector, Value::encoded(bytes.into()), context)
        .await;
    let printed = match reply {
        Ok(value) => {
            let encoded = value.as_encoded().cloned().unwrap_or_default();
            let result = json::decode(&schema_of(&types.result)?, &encoded)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&result).unwrap_or_default()
            );
            Ok(())
        }
        Err(e) => {
            let callee = match (&types.error, e.callee()) {
                (Some(schema), Some(detail)) => {
                    let bytes = detail.with(|v| v.as_encoded().cloned());
                    bytes.and_then(|b| {
                        schema_of(schema)
                            .ok()
                            .and_then(|s| json::decode(&s, &b).ok())
                    })
                }
                _ => None,
            };
            // The error as JSON on stdout too, with the callee's own value
            // when the method has one that decodes.
            let mut printed =
                serde_json::json!({ "error": kind_name(e.kind()), "message": e.message() });
            if let Some(callee) = callee {
                printed["callee"] = callee;
            }
            println!("{printed}");
            Err(Failure::from(e))
        }
    };
    peer.close().await;
    printed
}

async fn dump(reach: &Reach) -> Result<(), Failure> {
    let peer = open(reach).await?;
    let introspect: IntrospectClient = peer.lookup(INTROSPECT).await.map_err(|e| {
        Failure(format!(
            "{}: {} (the node's owner must publish its introspection object, see tether::introspect)",
            kind_name(e.kind()),
            e.message()
        ))
    })?;
    let Dump {
        node,
        published,
        connections,
        live_transactions,
    } = introspect.dump().await?;
    println!("node {node}");
    println!("published: {}", published.join(", "));
    println!("live transactions: {live_transactions}");
    println!("connections: {}", connections.len());
    println!(
        "  {:<12} {:<22} {:<12} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
        "source",
        "peer",
        "principal",
        "exports",
        "refs",
        "imports",
        "questions",
        "running",
        "oneways"
    );
    for c in connections {
        println!(
            "  {:<12} {:<22} {:<12} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
            c.source,
            c.peer_node.unwrap_or_default(),
            c.principal.unwrap_or_else(|| "-".into()),
            c.exports,
            c.export_refs,
            c.imports,
            c.questions,
            c.running_calls,
            c.running_oneways
        );
    }
    peer.close().await;
    Ok(())
}
