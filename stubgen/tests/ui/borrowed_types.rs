#[tether::interface]
pub trait Account {
    async fn rename(&self, name: &str);
    async fn owner(&self) -> &'static str;
}

fn main() {}
