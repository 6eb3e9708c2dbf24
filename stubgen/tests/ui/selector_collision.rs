#[tether::interface]
pub trait Clash {
    async fn m_qxuz(&self);
    async fn m_nglfe(&self);
}

fn main() {}
