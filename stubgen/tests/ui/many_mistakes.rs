// Every mistake is reported, not only the first.
#[tether::interface]
pub trait Account {
    const LIMIT: u64;
    fn balance(&self) -> u64;
    async fn deposit(&mut self, amount: u64) -> u64;
}

fn main() {}
