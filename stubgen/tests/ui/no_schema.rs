// A type with serde but no wire schema is reported at the type.

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Secret {
    pub code: u64,
}

#[tether::interface]
pub trait Vault {
    async fn open(&self, code: u64) -> Result<Secret, String>;
    async fn seal(&self, secret: Secret);
}

fn main() {}
