#[tether::interface]
pub trait Account {
    #[tether(write)]
    async fn deposit(&self, amount: u64) -> u64;
}

fn main() {}
