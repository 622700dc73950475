//! A serde deserializer wrapper that bounds what a payload can make the
//! decoder do: how many elements of sequences and maps it may announce and
//! yield, and how deeply values may nest.
//!
//! postcard alone bounds the bytes (every string, byte string and number
//! is read from the payload, whose length the receiver bounds), but not
//! the elements: a `Vec<()>` whose length prefix says 2^60 costs no byte
//! per element, and a recursive type nests one level per byte until the
//! stack ends. This wrapper forwards every call to the wrapped
//! deserializer and wraps every sequence, map, enum and nested value on the
//! way, charging a shared [`Budget`].

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// What one decode may still spend, shared by every wrapper of that decode.
#[derive(Debug)]
pub(crate) struct Budget {
    elements: Cell<u64>,
    depth: Cell<u32>,
    max_elements: u64,
    max_depth: u32,
    /// Which limit a decode ran into (the decoder's own error may not keep
    /// the custom message).
    exceeded: Cell<Option<Exceeded>>,
}

/// A limit a decode ran into.
#[derive(Debug, Clone, Copy)]
enum Exceeded {
    Elements,
    Depth,
}

impl Budget {
    pub(crate) fn new(max_elements: u64, max_depth: u32) -> Budget {
        Budget {
            elements: Cell::new(max_elements),
            depth: Cell::new(0),
            max_elements,
            max_depth,
            exceeded: Cell::new(None),
        }
    }

    fn element<E: de::Error>(&self) -> Result<(), E> {
        match self.elements.get().checked_sub(1) {
            Some(left) => {
                self.elements.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(Some(Exceeded::Elements));
                Err(E::custom(self.why().unwrap_or_default()))
            }
        }
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        let depth = self.depth.get() + 1;
        if depth > self.max_depth {
            self.exceeded.set(Some(Exceeded::Depth));
            return Err(E::custom(self.why().unwrap_or_default()));
        }
        self.depth.set(depth);
        Ok(())
    }

    /// The limit this decode ran into, said.
    pub(crate) fn why(&self) -> Option<String> {
        self.exceeded.get().map(|e| match e {
            Exceeded::Elements => {
                format!("more than {} elements of sequences and maps (the decoder's limit)", self.max_elements)
            }
            Exceeded::Depth => format!("values nested more than {} deep (the decoder's limit)", self.max_depth),
        })
    }

    fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    /// A length the decoder may announce to `Vec::with_capacity` and such:
    /// never more than the elements left.
    fn hint(&self, hint: Option<usize>) -> Option<usize> {
        hint.map(|n| n.min(usize::try_from(self.elements.get()).unwrap_or(usize::MAX)))
    }
}

/// Runs `f` one level deeper.
fn nested<T, E: de::Error>(budget: &Budget, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    budget.enter()?;
    let r = f();
    budget.leave();
    r
}

/// The wrapped deserializer.
pub(crate) struct De<'b, D> {
    pub(crate) inner: D,
    pub(crate) budget: &'b Budget,
}

/// A wrapped visitor.
struct Vis<'b, V> {
    inner: V,
    budget: &'b Budget,
}

/// A wrapped seed.
struct Seed<'b, S> {
    inner: S,
    budget: &'b Budget,
}

/// A wrapped sequence, map, enum or variant access.
struct Access<'b, A> {
    inner: A,
    budget: &'b Budget,
}

macro_rules! forward_de {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method(Vis { inner: visitor, budget: self.budget })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<'_, D> {
    type Error = D::Error;

    forward_de!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_unit_struct(name, Vis { inner: visitor, budget: self.budget })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_newtype_struct(name, Vis { inner: visitor, budget: self.budget })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple(len, Vis { inner: visitor, budget: self.budget })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple_struct(name, len, Vis { inner: visitor, budget: self.budget })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(name, fields, Vis { inner: visitor, budget: self.budget })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_enum(name, variants, Vis { inner: visitor, budget: self.budget })
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let budget = self.budget;
        nested(budget, || self.inner.visit_some(De { inner: d, budget }))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let budget = self.budget;
        nested(budget, || self.inner.visit_newtype_struct(De { inner: d, budget }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let budget = self.budget;
        nested(budget, || self.inner.visit_seq(Access { inner: seq, budget }))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let budget = self.budget;
        nested(budget, || self.inner.visit_map(Access { inner: map, budget }))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let budget = self.budget;
        nested(budget, || self.inner.visit_enum(Access { inner: data, budget }))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(De { inner: d, budget: self.budget })
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.budget.element()?;
        self.inner.next_element_seed(Seed { inner: seed, budget: self.budget })
    }

    fn size_hint(&self) -> Option<usize> {
        self.budget.hint(self.inner.size_hint())
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.budget.element()?;
        self.inner.next_key_seed(Seed { inner: seed, budget: self.budget })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Seed { inner: seed, budget: self.budget })
    }

    fn size_hint(&self) -> Option<usize> {
        self.budget.hint(self.inner.size_hint())
    }
}

impl<'de, 'b, A: EnumAccess<'de>> EnumAccess<'de> for Access<'b, A> {
    type Error = A::Error;
    type Variant = Access<'b, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self::Variant), A::Error> {
        let budget = self.budget;
        let (value, variant) = self.inner.variant_seed(Seed { inner: seed, budget })?;
        Ok((value, Access { inner: variant, budget }))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed { inner: seed, budget: self.budget })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(len, Vis { inner: visitor, budget: self.budget })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(fields, Vis { inner: visitor, budget: self.budget })
    }
}
