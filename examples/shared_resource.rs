//! A struct that owns its semaphore: a database that serves at most two connections at a time,
//! queried by five threads.
//!
//! Run it with `cargo run --example shared_resource`. A client prints "connected" after it has a
//! connection (a permit) and "disconnected" before it gives it back, so at every point of the
//! output at most two clients are connected.

use futex_semaphore::Semaphore;
use std::thread;
use std::time::Duration;

const CLIENTS: usize = 5;

/// A resource that only `connections` clients may use at once.
struct Database {
    connections: Semaphore,
}

impl Database {
    fn new(max_connections: usize) -> Database {
        Database { connections: Semaphore::new(max_connections) }
    }

    /// Runs `sql` for `client`, waiting for a free connection first.
    fn query(&self, client: usize, sql: &str) -> usize {
        println!("client {client} waits for a connection");
        let connection = self.connections.acquire().expect("the database is never closed");
        println!("client {client} connected, running {sql:?}");
        thread::sleep(Duration::from_millis(150));
        let rows = 10 * client;
        println!("client {client} disconnected, {rows} rows");
        drop(connection); // hand the connection to the next client
        rows
    }
}

fn main() {
    let db = Database::new(2);
    println!("{CLIENTS} clients, a database with 2 connections");
    // Scoped threads borrow `db`: the semaphore needs neither an `Arc` nor a `static`.
    let total: usize = thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let db = &db;
                s.spawn(move || db.query(client, "SELECT * FROM accounts"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a client panicked")).sum()
    });
    println!("all {CLIENTS} clients served, {total} rows in all");
}
