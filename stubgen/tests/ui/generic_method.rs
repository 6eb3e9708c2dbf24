#[tether::interface]
pub trait Account {
    async fn deposit<T: Into<u64>>(&self, amount: T) -> u64;
}

fn main() {}
