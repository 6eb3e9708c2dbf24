#[tether::interface]
pub trait Account {
    fn balance(&self) -> u64;
}

fn main() {}
