//! Reads the user's trait into plain structs, collecting every mistake.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemTrait, Pat, PathArguments, ReturnType, TraitItem,
    TraitItemFn, Type, Visibility,
};

/// A trait the macro accepted.
pub(crate) struct Spec {
    /// The trait as written, to be re-emitted with its methods desugared.
    pub(crate) item: ItemTrait,
    pub(crate) name: Ident,
    pub(crate) vis: Visibility,
    pub(crate) methods: Vec<MethodSpec>,
}

pub(crate) struct MethodSpec {
    pub(crate) ident: Ident,
    /// The method's name without `r#`.
    pub(crate) name: String,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) params: Vec<(Ident, Type)>,
    pub(crate) ret: Ret,
    /// Marked `#[tether(read)]`: the method only reads the object.
    pub(crate) reads: bool,
}

pub(crate) enum Ret {
    /// `-> T`, including no return type (`()`).
    Plain(Type),
    /// `-> Result<T, E>`.
    Fallible(Type, Box<Type>),
}

impl Ret {
    /// The type of a successful reply.
    pub(crate) fn ok(&self) -> &Type {
        match self {
            Ret::Plain(t) | Ret::Fallible(t, _) => t,
        }
    }
}

pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> Result<Spec, syn::Error> {
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.push(syn::Error::new(
            attr.span(),
            "#[tether::interface] takes no arguments",
        ));
    }
    let item: ItemTrait = syn::parse2(item)?;
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            item.generics.span(),
            "an interface trait cannot be generic: its selectors and wire types must be concrete",
        ));
    }
    let mut methods = Vec::new();
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(f) => {
                if let Some(m) = method(f, &mut errors) {
                    methods.push(m);
                }
            }
            other => errors.push(syn::Error::new(
                other.span(),
                "an interface trait holds only `async fn` methods",
            )),
        }
    }
    check_selectors(&methods, &mut errors);
    errors.finish()?;
    Ok(Spec {
        name: item.ident.clone(),
        vis: item.vis.clone(),
        item,
        methods,
    })
}

fn method(f: &TraitItemFn, errors: &mut Errors) -> Option<MethodSpec> {
    let sig = &f.sig;
    let before = errors.len();
    let reads = tether_attrs(&f.attrs, errors);
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span(),
            format!("`{}` must be an `async fn`: interface methods may run remotely, so every call is awaited", sig.ident),
        ));
    }
    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new(
            c.span(),
            "interface methods cannot be `const`",
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new(
            u.span(),
            "interface methods cannot be `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new(
            abi.span(),
            "interface methods cannot declare an ABI",
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new(
            v.span(),
            "interface methods cannot be variadic",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            format!(
                "`{}` cannot be generic: a selector names one method with concrete argument types",
                sig.ident
            ),
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_some() => {
            errors.push(syn::Error::new(
                r.span(),
                "`&mut self` is not supported: an exposed object serves concurrent calls through shared references; take `&self` and use interior mutability (or a mutual-exclusion filter)",
            ));
        }
        Some(FnArg::Receiver(r)) => errors.push(syn::Error::new(
            r.span(),
            "unsupported receiver: interface methods take `&self`",
        )),
        Some(other) => errors.push(syn::Error::new(
            other.span(),
            "interface methods take `&self` first: an associated function has no object to call",
        )),
        None => errors.push(syn::Error::new(
            sig.ident.span(),
            "interface methods take `&self` first: an associated function has no object to call",
        )),
    }
    let mut params = Vec::new();
    for arg in inputs {
        let FnArg::Typed(pt) = arg else { continue };
        let ident = match &*pt.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                errors.push(syn::Error::new(
                    other.span(),
                    "interface parameters need plain names: the name is part of the interface descriptor",
                ));
                continue;
            }
        };
        check_owned(&pt.ty, errors);
        params.push((ident, (*pt.ty).clone()));
    }
    let ret = match &sig.output {
        ReturnType::Default => Ret::Plain(syn::parse_quote!(())),
        ReturnType::Type(_, ty) => {
            check_owned(ty, errors);
            match result_args(ty) {
                Some((t, e)) => Ret::Fallible(t, Box::new(e)),
                None => Ret::Plain((**ty).clone()),
            }
        }
    };
    if errors.len() > before {
        return None;
    }
    let name = sig.ident.to_string();
    Some(MethodSpec {
        ident: sig.ident.clone(),
        name: name.strip_prefix("r#").unwrap_or(&name).to_string(),
        docs: f
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
        params,
        ret,
        reads,
    })
}

/// Reads the `#[tether(...)]` attributes of a method: `read` marks a
/// method that only reads the object. Anything else is an error.
fn tether_attrs(attrs: &[Attribute], errors: &mut Errors) -> bool {
    let mut reads = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("tether")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("read") {
                reads = true;
                Ok(())
            } else {
                Err(meta.error(
                    "unknown tether attribute: the only one on a method is `#[tether(read)]`",
                ))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    reads
}

/// `Result<T, E>` (any path ending in `Result` with two type arguments).
fn result_args(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let (t, e) = (types.next()?, types.next()?);
    types.next().is_none().then_some((t, e))
}

/// Arguments and results travel by value: no borrowed types.
fn check_owned(ty: &Type, errors: &mut Errors) {
    struct Borrows(Vec<Span>);
    impl<'a> Visit<'a> for Borrows {
        fn visit_type_reference(&mut self, r: &'a syn::TypeReference) {
            self.0.push(r.span());
        }
        fn visit_type_impl_trait(&mut self, t: &'a syn::TypeImplTrait) {
            self.0.push(t.span());
        }
    }
    let mut v = Borrows(Vec::new());
    v.visit_type(ty);
    for span in v.0 {
        errors.push(syn::Error::new(
            span,
            "interface types travel by value: use an owned type (`String`, not `&str`; a concrete type, not `impl Trait`)",
        ));
    }
}

fn check_selectors(methods: &[MethodSpec], errors: &mut Errors) {
    for (i, m) in methods.iter().enumerate() {
        if let Some(earlier) = methods[..i]
            .iter()
            .find(|e| selector_id(&e.name) == selector_id(&m.name))
        {
            errors.push(syn::Error::new(
                m.ident.span(),
                format!(
                    "the selector of `{}` collides with that of `{}` ({:08x}); rename one of them",
                    m.name,
                    earlier.name,
                    selector_id(&m.name)
                ),
            ));
        }
    }
}

/// The 32-bit FNV-1a hash of a method's name; must equal
/// `tether_semantics::selector_id` (the generated code asserts it).
pub(crate) fn selector_id(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A type as written, with token spacing tidied for people to read.
pub(crate) fn type_string(ty: &Type) -> String {
    let raw = ty.to_token_stream().to_string();
    let mut s = raw
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace("& ", "&")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace("[ ", "[")
        .replace(" ]", "]")
        .replace(" ; ", "; ");
    if s == "()" || s.is_empty() {
        s = "()".to_string();
    }
    s
}

#[derive(Default)]
struct Errors(Option<syn::Error>, usize);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        self.1 += 1;
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
    fn len(&self) -> usize {
        self.1
    }
    fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}
