pub struct Opaque;

#[tether::interface]
pub trait Vault {
    async fn store(&self, item: Opaque);
}

fn main() {}
