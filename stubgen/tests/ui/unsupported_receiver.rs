#[tether::interface]
pub trait Account {
    async fn close(self) -> u64;
    async fn boxed(self: Box<Self>);
    async fn new_account(owner: String) -> u64;
}

fn main() {}
