//! Merging sorted sources (the delta and the tables) into one sorted stream: for a key held by
//! several sources, the newest source's entry wins and the others are skipped.

use std::cmp::Ordering;

use super::table::Entry;
use crate::error::StateError;

/// A sorted source of entries (tombstones included).
pub(super) type Source<'a> = Box<dyn Iterator<Item = Result<Entry, StateError>> + 'a>;

pub(super) struct Merge<'a> {
    /// Newest first.
    sources: Vec<Source<'a>>,
    heads: Vec<Option<Entry>>,
    ended: Vec<bool>,
    rev: bool,
    failed: bool,
}

impl<'a> Merge<'a> {
    pub(super) fn new(sources: Vec<Source<'a>>, rev: bool) -> Merge<'a> {
        let n = sources.len();
        Merge {
            sources,
            heads: (0..n).map(|_| None).collect(),
            ended: vec![false; n],
            rev,
            failed: false,
        }
    }

    fn fill(&mut self) -> Result<(), StateError> {
        for i in 0..self.sources.len() {
            if self.heads[i].is_none() && !self.ended[i] {
                match self.sources[i].next() {
                    Some(Ok(e)) => self.heads[i] = Some(e),
                    Some(Err(e)) => return Err(e),
                    None => self.ended[i] = true,
                }
            }
        }
        Ok(())
    }
}

impl Iterator for Merge<'_> {
    type Item = Result<Entry, StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Err(e) = self.fill() {
            self.failed = true;
            return Some(Err(e));
        }
        // The first key in the merge's order; on a tie the newest source (lowest index) wins.
        let mut best: Option<usize> = None;
        for (i, h) in self.heads.iter().enumerate() {
            let Some((k, _)) = h else { continue };
            best = match best {
                None => Some(i),
                Some(b) => {
                    let bk = self.heads[b]
                        .as_ref()
                        .map(|(k, _)| k.as_slice())
                        .unwrap_or(&[]);
                    let ord = k.as_slice().cmp(bk);
                    let better = if self.rev {
                        ord == Ordering::Greater
                    } else {
                        ord == Ordering::Less
                    };
                    if better {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
            };
        }
        let b = best?;
        let entry = self.heads[b].take()?;
        for h in self.heads.iter_mut() {
            if h.as_ref().is_some_and(|(k, _)| *k == entry.0) {
                *h = None;
            }
        }
        Some(Ok(entry))
    }
}
