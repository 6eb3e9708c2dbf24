// Serde attributes that change the encoding cannot be described by a
// schema; each is refused at its span.

#[derive(serde::Serialize, serde::Deserialize, tether::Schema)]
pub struct Partial {
    pub kept: u64,
    #[serde(skip)]
    pub cache: u64,
    #[serde(flatten)]
    pub extra: Inner,
    #[serde(with = "my_format")]
    pub custom: u64,
}

#[derive(serde::Serialize, serde::Deserialize, tether::Schema)]
pub struct Inner {
    pub a: u8,
}

#[derive(serde::Serialize, serde::Deserialize, tether::Schema)]
#[serde(tag = "kind")]
pub enum Tagged {
    A { x: u8 },
}

#[derive(serde::Serialize, serde::Deserialize, tether::Schema)]
#[serde(rename_all = "camelCase")]
pub struct Camel {
    pub some_field: u8,
}

fn main() {}
