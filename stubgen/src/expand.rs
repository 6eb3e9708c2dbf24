//! Writes the generated items: the desugared trait, the interface marker
//! (descriptor, selectors, skeleton) and the client stub.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ReturnType, TraitItem, Type};

use crate::parse::{MethodSpec, Ret, Spec, selector_id, type_string};

/// The one path generated code reaches the runtime through.
fn rt() -> TokenStream {
    quote!(::tether::__private)
}

pub(crate) fn expand(spec: &Spec) -> TokenStream {
    let item = desugar_trait(spec);
    let marker = marker(spec);
    let client = client(spec);
    quote! {
        #item
        #marker
        #client
    }
}

/// The trait with each `async fn` turned into a method returning a `Send`
/// future, so that skeletons can run calls on a multi-threaded runtime.
/// Implementations still write `async fn`.
fn desugar_trait(spec: &Spec) -> TokenStream {
    let mut item = spec.item.clone();
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Send));
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Sync));
    for trait_item in &mut item.items {
        let TraitItem::Fn(f) = trait_item else {
            continue;
        };
        // `#[tether(...)]` is for the macro only.
        f.attrs.retain(|a| !a.path().is_ident("tether"));
        f.sig.asyncness = None;
        let output: Type = match &f.sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, t) => (**t).clone(),
        };
        let span = f.sig.output.span();
        f.sig.output = syn::parse_quote_spanned! {span=>
            -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
        };
        if let Some(body) = &f.default {
            f.default = Some(syn::parse_quote_spanned! {body.span()=>
                { async move #body }
            });
        }
    }
    quote!(#item)
}

fn const_name(m: &MethodSpec) -> syn::Ident {
    format_ident!("{}", m.name.to_uppercase(), span = m.ident.span())
}

/// The name of the hidden constant that holds a method's [`Codec`].
fn codec_name(m: &MethodSpec) -> syn::Ident {
    format_ident!(
        "__TETHER_CODEC_{}",
        m.name.to_uppercase(),
        span = m.ident.span()
    )
}

/// Whether `t` is spelled `Vec<u8>` (or `std::vec::Vec<u8>`,
/// `alloc::vec::Vec<u8>`): a parameter or result the generated code
/// encodes and decodes as a byte string, which has the same bytes on the
/// wire as serde's one-element-at-a-time form of a vector.
fn is_byte_vec(t: &Type) -> bool {
    let Type::Path(p) = t else { return false };
    if p.qself.is_some() {
        return false;
    }
    let names: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let prefix_ok = match names.as_slice() {
        [_] => true,
        [a, b, _] => (a == "std" || a == "alloc") && b == "vec",
        _ => false,
    };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    if !prefix_ok || last.ident != "Vec" {
        return false;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    matches!(
        args.args.iter().collect::<Vec<_>>().as_slice(),
        [syn::GenericArgument::Type(Type::Path(u))] if u.qself.is_none() && u.path.is_ident("u8")
    )
}

/// A method's codec: serde's, or one that writes its `Vec<u8>`
/// parameters and result as byte strings (the same bytes, one copy).
fn codec(m: &MethodSpec) -> TokenStream {
    let rt = rt();
    let args = args_type(m);
    let ok = m.ret.ok();
    let serde = quote!(<#rt::Codec<#args, #ok>>::SERDE);
    let bytes_params = m.params.iter().any(|(_, t)| is_byte_vec(t));
    let bytes_result = is_byte_vec(ok);
    if !bytes_params && !bytes_result {
        return serde;
    }
    let (encode_args, decode_args) = if bytes_params {
        let items = m.params.iter().enumerate().map(|(i, (_, t))| {
            let i = syn::Index::from(i);
            if is_byte_vec(t) {
                quote!(#rt::AsBytes(&args.#i))
            } else {
                quote!(&args.#i)
            }
        });
        let wire = m.params.iter().map(|(_, t)| {
            if is_byte_vec(t) {
                quote!(#rt::ByteVec)
            } else {
                quote!(#t)
            }
        });
        let wire = quote!(( #(#wire,)* ));
        let names: Vec<_> = (0..m.params.len())
            .map(|i| format_ident!("__tether_{}", i))
            .collect();
        let values = m.params.iter().zip(&names).map(|((_, t), n)| {
            if is_byte_vec(t) {
                quote!(#n.0)
            } else {
                quote!(#n)
            }
        });
        (
            quote! {
                |args: &#args, out: &mut ::std::vec::Vec<u8>| #rt::encode_into(&( #(#items,)* ), out)
            },
            quote! {
                |bytes: &[u8], refs: &[#rt::Ref]| {
                    let ( #(#names,)* ) = #rt::decode_wire::<#wire, #args>(bytes, refs)?;
                    ::core::result::Result::Ok(( #(#values,)* ))
                }
            },
        )
    } else {
        (quote!(#serde.encode_args), quote!(#serde.decode_args))
    };
    let (encode_result, decode_result) = if bytes_result {
        (
            quote! {
                |result: &#ok, out: &mut ::std::vec::Vec<u8>| #rt::encode_into(&#rt::AsBytes(result), out)
            },
            quote! {
                |bytes: &[u8], refs: &[#rt::Ref]| {
                    ::core::result::Result::Ok(#rt::decode_wire::<#rt::ByteVec, #ok>(bytes, refs)?.0)
                }
            },
        )
    } else {
        (quote!(#serde.encode_result), quote!(#serde.decode_result))
    };
    quote! {
        #rt::Codec {
            encode_args: #encode_args,
            decode_args: #decode_args,
            encode_result: #encode_result,
            decode_result: #decode_result,
        }
    }
}

fn args_type(m: &MethodSpec) -> TokenStream {
    let tys = m.params.iter().map(|(_, t)| t);
    quote!(( #(#tys,)* ))
}

fn marker(spec: &Spec) -> TokenStream {
    let rt = rt();
    let vis = &spec.vis;
    let trait_name = &spec.name;
    let marker = format_ident!("{}Interface", spec.name);
    let client = format_ident!("{}Client", spec.name);
    let trait_str = spec.name.to_string();

    let consts = spec.methods.iter().map(|m| {
        let c = const_name(m);
        let name = &m.name;
        let id = selector_id(name);
        let doc = format!("The `{name}` method of [`{trait_str}`] (selector `{id:08x}`).");
        let codec_name = codec_name(m);
        let codec = codec(m);
        let args = args_type(m);
        let ok = m.ret.ok();
        quote! {
            #[doc = #doc]
            pub const #c: #rt::Method<#marker> = #rt::Method::new(#rt::Selector::new(#name));
            #[doc(hidden)]
            pub const #codec_name: #rt::Codec<#args, #ok> = #codec;
        }
    });
    let id_checks = spec.methods.iter().map(|m| {
        let c = const_name(m);
        let id = selector_id(&m.name);
        quote!(::core::assert!(#marker::#c.selector().id() == #id);)
    });

    let descriptors = spec.methods.iter().map(|m| {
        let name = &m.name;
        let params = m.params.iter().map(|(p, t)| {
            let p = p.to_string();
            let p = p.strip_prefix("r#").unwrap_or(&p).to_string();
            let t = type_string(t);
            quote!(#rt::Param::new(#p, #t))
        });
        let returns = type_string(m.ret.ok());
        let error = match &m.ret {
            Ret::Plain(_) => quote!(::core::option::Option::None),
            Ret::Fallible(_, e) => {
                let e = type_string(e);
                quote!(::core::option::Option::Some(#e))
            }
        };
        let reads = m.reads.then(|| quote!(.reading()));
        let schema = method_schema(m);
        quote! {
            #rt::MethodDescriptor::new(#rt::Selector::new(#name), &[ #(#params),* ], #returns, #error) #reads
                .with_schema(&#schema)
        }
    });
    // The fingerprint hashes the canonical schema, methods sorted by name,
    // at compile time.
    let mut sorted: Vec<&MethodSpec> = spec.methods.iter().collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let sorted_schemas = sorted.iter().map(|m| method_schema(m));
    let fingerprint = quote! {
        #rt::schema::interface_fingerprint(#trait_str, &[ #(#sorted_schemas),* ])
    };

    let wire_checks = spec.methods.iter().flat_map(|m| {
        let mut types: Vec<&Type> = m.params.iter().map(|(_, t)| t).collect();
        types.push(m.ret.ok());
        let error = match &m.ret {
            Ret::Plain(_) => None,
            Ret::Fallible(_, e) => {
                Some(quote_spanned! {e.span()=> #rt::assert_error_type::<#e>(); })
            }
        };
        types
            .into_iter()
            .map(|t| quote_spanned! {t.span()=> #rt::assert_wire_type::<#t>(); })
            .chain(error)
    });

    let arms = spec.methods.iter().map(|m| {
        let id = selector_id(&m.name);
        let ident = &m.ident;
        let args = args_type(m);
        let bindings: Vec<_> = (0..m.params.len())
            .map(|i| format_ident!("__tether_arg{}", i))
            .collect();
        let path = format!("{trait_str}::{}", m.name);
        let codec_name = codec_name(m);
        let reply = match &m.ret {
            Ret::Plain(r) => quote! {
                #rt::reply::<#args, #r>(__tether_args, __tether_result, &#marker::#codec_name)
            },
            Ret::Fallible(t, e) => quote! {
                #rt::reply_fallible::<#args, #t, #e>(__tether_args, __tether_result, #path, &#marker::#codec_name)
            },
        };
        let ok = m.ret.ok();
        quote! {
            #id => #rt::Box::pin(async move {
                let (__tether_target, __tether_selector, mut __tether_args, __tether_context) =
                    #rt::open(__tether_message);
                let ( #(#bindings,)* ) = #rt::take_args::<#args, #ok>(&mut __tether_args, &#marker::#codec_name)?;
                let __tether_object = #rt::object::<__TetherObject>(&__tether_target)?;
                let __tether_result = #rt::run(
                    __tether_context,
                    &__tether_target,
                    __tether_selector,
                    <__TetherObject as #trait_name>::#ident(__tether_object, #(#bindings),*),
                )
                .await?;
                #reply
            }),
        }
    });

    let doc = format!(
        "The Tether interface of [`{trait_str}`]: its descriptor, one selector constant per method, and the skeleton that serves any `{trait_str}` object. Call it through [`{client}`]."
    );
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug, ::core::default::Default)]
        #vis struct #marker;

        #[allow(dead_code)]
        impl #marker {
            #(#consts)*

            /// A view of this interface: every method offered, sync, no filters.
            pub fn view() -> #rt::View<#marker> {
                #rt::View::new()
            }
        }

        const _: () = {
            #(#id_checks)*
            #(#wire_checks)*
        };

        impl #rt::Interface for #marker {
            const DESCRIPTOR: &'static #rt::InterfaceDescriptor = &#rt::InterfaceDescriptor::new(
                #trait_str,
                &[ #(#descriptors),* ],
                #fingerprint,
            );
        }

        impl<__TetherObject> #rt::Serve<__TetherObject> for #marker
        where
            __TetherObject: #trait_name + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            fn dispatch(
                __tether_message: #rt::Message,
            ) -> #rt::BoxFuture<'static, ::core::result::Result<#rt::Value, #rt::Error>> {
                match __tether_message.selector().id() {
                    #(#arms)*
                    _ => #rt::unknown_method(__tether_message),
                }
            }
        }
    }
}

fn client(spec: &Spec) -> TokenStream {
    let rt = rt();
    let vis = &spec.vis;
    let marker = format_ident!("{}Interface", spec.name);
    let client = format_ident!("{}Client", spec.name);
    let trait_str = spec.name.to_string();

    let methods = spec.methods.iter().map(|m| {
        let ident = &m.ident;
        let c = const_name(m);
        let fallback = format!(
            "Calls [`{trait_str}::{}`] through the referenced view.",
            m.name
        );
        let docs = if m.docs.is_empty() {
            quote!(#[doc = #fallback])
        } else {
            let d = &m.docs;
            quote!(#(#d)*)
        };
        let args = args_type(m);
        let params = m.params.iter().map(|(p, t)| quote!(#p: #t));
        let names = m.params.iter().map(|(p, _)| p);
        let cloner = quote! {{
            #[allow(unused_imports)]
            use #rt::{ViaClone as _, ViaNothing as _, ViaSerde as _};
            (&&&#rt::Probe::<#args>::new()).cloner()
        }};
        let (output, call) = match &m.ret {
            Ret::Plain(r) => (quote!(#rt::Call<#r>), quote!(#rt::call::<#args, #r>)),
            Ret::Fallible(t, e) => (
                quote!(#rt::Call<#t, #e>),
                quote!(#rt::call_fallible::<#args, #t, #e>),
            ),
        };
        let codec_name = codec_name(m);
        let ok = m.ret.ok();
        quote! {
            #docs
            pub fn #ident(&self, #(#params),*) -> #output {
                fn __tether_take(
                    reply: #rt::Value,
                ) -> ::core::result::Result<#ok, #rt::Value> {
                    #rt::take_result::<#args, #ok>(reply, &#marker::#codec_name)
                }
                let wire = #rt::Wire {
                    cloner: #cloner,
                    codec: &#marker::#codec_name,
                    take: __tether_take,
                };
                #call(&self.reference, #marker::#c.selector(), ( #(#names,)* ), wire)
            }
        }
    });

    let ref_name = format!("tether::Ref<{trait_str}>");
    let doc = format!(
        "A typed stub for [`{trait_str}`]: each method sends a call through the referenced view and returns a [`Call`](::tether::Call) to await. The view decides how the call is carried out."
    );
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug, ::core::cmp::PartialEq, ::core::cmp::Eq, ::core::hash::Hash)]
        #vis struct #client {
            reference: #rt::Ref,
        }

        impl #rt::Client for #client {
            type Interface = #marker;

            fn from_ref_unchecked(reference: #rt::Ref) -> Self {
                #client { reference }
            }

            fn reference(&self) -> &#rt::Ref {
                &self.reference
            }
        }

        // A stub travels by reference: as an argument or a result of a
        // remote call it arrives as a working stub for the same view.
        impl #rt::serde::Serialize for #client {
            fn serialize<S: #rt::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                #rt::serde::Serialize::serialize(&self.reference, serializer)
            }
        }

        impl<'de> #rt::serde::Deserialize<'de> for #client {
            fn deserialize<D: #rt::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                #rt::deserialize_client::<Self, D>(deserializer)
            }
        }

        // Its wire schema: a reference to this interface.
        impl #rt::schema::Schema for #client {
            const SCHEMA: &'static #rt::schema::NamedType =
                &#rt::schema::NamedType {
                    name: #ref_name,
                    ty: &#rt::schema::DataModelType::U32,
                };
        }

        impl #client {
            #(#methods)*
        }
    }
}

/// The `MethodSchema` of one method: each type's postcard-schema, named
/// at the type's span so that a type without one is reported there.
fn method_schema(m: &MethodSpec) -> TokenStream {
    let rt = rt();
    let name = &m.name;
    let schema_of = |t: &Type| quote_spanned!(t.span()=> <#t as #rt::schema::Schema>::SCHEMA);
    let params = m.params.iter().map(|(_, t)| schema_of(t));
    let (result, error) = match &m.ret {
        Ret::Plain(t) => (schema_of(t), quote!(::core::option::Option::None)),
        Ret::Fallible(t, e) => {
            let e = schema_of(e);
            (schema_of(t), quote!(::core::option::Option::Some(#e)))
        }
    };
    quote! {
        #rt::schema::MethodSchema {
            name: #name,
            params: &[ #(#params),* ],
            result: #result,
            error: #error,
        }
    }
}
