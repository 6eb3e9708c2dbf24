//! `#[derive(Schema)]`: a postcard-schema `Schema` for a user type, written
//! against the runtime's re-export so that users need no other dependency,
//! and refusing the serde attributes that would make the schema lie about
//! the encoding.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr};

/// What the serde attributes of one item say that the schema must follow.
#[derive(Default)]
struct SerdeAttrs {
    rename: Option<String>,
    transparent: bool,
}

/// Serde attributes that change a type's encoding in ways the schema
/// cannot describe; each is refused at its span.
const REFUSED: &[&str] = &[
    "skip",
    "skip_serializing",
    "skip_deserializing",
    "skip_serializing_if",
    "flatten",
    "with",
    "serialize_with",
    "deserialize_with",
    "getter",
    "tag",
    "content",
    "untagged",
    "other",
    "from",
    "try_from",
    "into",
    "remote",
    "rename_all",
    "rename_all_fields",
];

fn serde_attrs(attrs: &[syn::Attribute], errors: &mut Vec<syn::Error>) -> SerdeAttrs {
    let mut found = SerdeAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let name = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            // `serde_bytes` writes a `Vec<u8>` as a byte string: the same
            // bytes and the same schema, in one copy instead of one call per
            // byte (the fast path the interface macro gives parameters).
            if name == "with" && meta.input.peek(syn::Token![=]) {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value() == "serde_bytes" {
                    return Ok(());
                }
                errors.push(syn::Error::new(
                    lit.span(),
                    "derive(Schema) cannot describe `#[serde(with = ...)]` (only `with = \"serde_bytes\"`, which keeps the encoding): write the type without it, or implement `Schema` by hand",
                ));
                return Ok(());
            }
            if REFUSED.contains(&name.as_str()) {
                let why = if name.starts_with("rename_all") {
                    "derive(Schema) does not follow `rename_all`: rename fields and variants one by one with `#[serde(rename = \"...\")]`"
                        .to_string()
                } else {
                    format!(
                        "derive(Schema) cannot describe `#[serde({name})]`: it changes the encoding; write the type without it, or implement `Schema` by hand"
                    )
                };
                errors.push(syn::Error::new(meta.path.span(), why));
            }
            if name == "transparent" {
                found.transparent = true;
            }
            if name == "rename" {
                if meta.input.peek(syn::token::Paren) {
                    errors.push(syn::Error::new(
                        meta.path.span(),
                        "derive(Schema) takes one name: `#[serde(rename = \"...\")]`",
                    ));
                    meta.parse_nested_meta(|inner| skip_value(&inner))?;
                } else {
                    let lit: LitStr = meta.value()?.parse()?;
                    found.rename = Some(lit.value());
                }
                return Ok(());
            }
            skip_value(&meta)
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    found
}

/// Consumes whatever follows an attribute's name: `= value` or `(...)`.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

pub(crate) fn derive(input: DeriveInput) -> TokenStream {
    let rt = quote!(::tether::__private::schema);
    let mut errors = Vec::new();
    let container = serde_attrs(&input.attrs, &mut errors);
    let name = &input.ident;
    let name_str = name.to_string();

    let ty = match &input.data {
        Data::Struct(data) if container.transparent => match data.fields.iter().next() {
            Some(field) if data.fields.len() == 1 => {
                let t = &field.ty;
                quote_spanned!(t.span()=> &#rt::DataModelType::NewtypeStruct(<#t as #rt::Schema>::SCHEMA))
            }
            _ => {
                errors.push(syn::Error::new(
                    name.span(),
                    "`#[serde(transparent)]` needs exactly one field",
                ));
                quote!(&#rt::DataModelType::Unit)
            }
        },
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => {
                let fields = named(&rt, fields, &mut errors);
                quote!(&#rt::DataModelType::Struct(&[#(#fields),*]))
            }
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                let t = &fields.unnamed[0].ty;
                serde_attrs(&fields.unnamed[0].attrs, &mut errors);
                quote_spanned!(t.span()=> &#rt::DataModelType::NewtypeStruct(<#t as #rt::Schema>::SCHEMA))
            }
            Fields::Unnamed(fields) => {
                let items = unnamed(&rt, fields, &mut errors);
                quote!(&#rt::DataModelType::TupleStruct(&[#(#items),*]))
            }
            Fields::Unit => quote!(&#rt::DataModelType::UnitStruct),
        },
        Data::Enum(data) => {
            let variants: Vec<TokenStream> = data
                .variants
                .iter()
                .map(|v| {
                    let attrs = serde_attrs(&v.attrs, &mut errors);
                    let vname = attrs.rename.unwrap_or_else(|| v.ident.unraw().to_string());
                    let vty = match &v.fields {
                        Fields::Unit => quote!(&#rt::DataModelVariant::UnitVariant),
                        Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                            let t = &fields.unnamed[0].ty;
                            serde_attrs(&fields.unnamed[0].attrs, &mut errors);
                            quote_spanned!(t.span()=> &#rt::DataModelVariant::NewtypeVariant(<#t as #rt::Schema>::SCHEMA))
                        }
                        Fields::Unnamed(fields) => {
                            let items = unnamed(&rt, fields, &mut errors);
                            quote!(&#rt::DataModelVariant::TupleVariant(&[#(#items),*]))
                        }
                        Fields::Named(fields) => {
                            let fields = named(&rt, fields, &mut errors);
                            quote!(&#rt::DataModelVariant::StructVariant(&[#(#fields),*]))
                        }
                    };
                    quote!(&#rt::NamedVariant { name: #vname, ty: #vty })
                })
                .collect();
            quote!(&#rt::DataModelType::Enum(&[#(#variants),*]))
        }
        Data::Union(u) => {
            errors.push(syn::Error::new(
                u.union_token.span(),
                "derive(Schema) takes a struct or an enum; serde does not encode unions",
            ));
            quote!(&#rt::DataModelType::Unit)
        }
    };

    if !errors.is_empty() {
        let errors = errors.into_iter().map(|e| e.to_compile_error());
        return quote!(#(#errors)*);
    }

    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(syn::parse_quote!(#rt::Schema));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        impl #impl_generics #rt::Schema for #name #ty_generics #where_clause {
            const SCHEMA: &'static #rt::NamedType = &#rt::NamedType {
                name: #name_str,
                ty: #ty,
            };
        }
    }
}

fn named(
    rt: &TokenStream,
    fields: &syn::FieldsNamed,
    errors: &mut Vec<syn::Error>,
) -> Vec<TokenStream> {
    fields
        .named
        .iter()
        .map(|f| {
            let attrs = serde_attrs(&f.attrs, errors);
            let fname = attrs
                .rename
                .unwrap_or_else(|| f.ident.as_ref().map(|i| i.unraw().to_string()).unwrap_or_default());
            let t = &f.ty;
            quote_spanned!(t.span()=> &#rt::NamedValue { name: #fname, ty: <#t as #rt::Schema>::SCHEMA })
        })
        .collect()
}

fn unnamed(
    rt: &TokenStream,
    fields: &syn::FieldsUnnamed,
    errors: &mut Vec<syn::Error>,
) -> Vec<TokenStream> {
    fields
        .unnamed
        .iter()
        .map(|f| {
            serde_attrs(&f.attrs, errors);
            let t = &f.ty;
            quote_spanned!(t.span()=> <#t as #rt::Schema>::SCHEMA)
        })
        .collect()
}
