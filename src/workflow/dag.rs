//! Graph algorithms over task dependencies: stable topological order, cycle extraction, reachability.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Orders nodes so each comes after all of its `needs`, breaking ties by index (file order).
///
/// `needs[i]` lists the nodes `i` depends on; out-of-range entries are ignored.
/// On a cycle, returns every elementary cycle found, one per strongly connected component,
/// each as `[a, b, c]` meaning a needs b, b needs c, c needs a.
pub(crate) fn topo_order(needs: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let n = needs.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut pending = vec![0usize; n];
    for (i, ns) in needs.iter().enumerate() {
        for &j in ns {
            if j < n {
                dependents[j].push(i);
                pending[i] += 1;
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| pending[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            pending[d] -= 1;
            if pending[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    let stuck: Vec<bool> = pending.iter().map(|&p| p > 0).collect();
    Err(find_cycles(needs, &stuck))
}

/// One cycle per strongly connected component (of size > 1, or a self-loop) among `alive` nodes.
fn find_cycles(needs: &[Vec<usize>], alive: &[bool]) -> Vec<Vec<usize>> {
    let n = needs.len();
    let comp = components(needs, alive);
    let mut done = vec![false; n];
    let mut cycles = Vec::new();
    for start in 0..n {
        if !alive[start] || done[comp[start]] {
            continue;
        }
        let c = comp[start];
        let in_comp = |j: usize| j < n && alive[j] && comp[j] == c;
        // Every node of a cyclic component has a successor inside it; walk until a node repeats.
        let mut seen_at = vec![usize::MAX; n];
        let mut path = Vec::new();
        let mut cur = start;
        let cycle = loop {
            if seen_at[cur] != usize::MAX {
                break Some(path.split_off(seen_at[cur]));
            }
            seen_at[cur] = path.len();
            path.push(cur);
            match needs[cur].iter().copied().find(|&j| in_comp(j)) {
                Some(next) => cur = next,
                None => break None,
            }
        };
        done[c] = true;
        if let Some(cycle) = cycle {
            cycles.push(cycle);
        }
    }
    cycles
}

/// Strongly connected component id of each node (iterative Kosaraju); dead nodes get their own ids.
fn components(needs: &[Vec<usize>], alive: &[bool]) -> Vec<usize> {
    let n = needs.len();
    let ok = |j: usize| j < n && alive[j];
    // Pass 1: finishing order on the `needs` graph.
    let mut visited = vec![false; n];
    let mut finish = Vec::with_capacity(n);
    for s in 0..n {
        if visited[s] || !alive[s] {
            continue;
        }
        visited[s] = true;
        let mut stack = vec![(s, 0usize)];
        while let Some((v, k)) = stack.pop() {
            if let Some(&w) = needs[v].get(k) {
                stack.push((v, k + 1));
                if ok(w) && !visited[w] {
                    visited[w] = true;
                    stack.push((w, 0));
                }
            } else {
                finish.push(v);
            }
        }
    }
    // Pass 2: reverse graph, in reverse finishing order.
    let mut rev: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (v, ns) in needs.iter().enumerate() {
        if alive[v] {
            for &w in ns {
                if ok(w) {
                    rev[w].push(v);
                }
            }
        }
    }
    let mut comp = vec![usize::MAX; n];
    let mut next_id = 0;
    for &s in finish.iter().rev() {
        if comp[s] != usize::MAX {
            continue;
        }
        comp[s] = next_id;
        let mut stack = vec![s];
        while let Some(v) = stack.pop() {
            for &w in &rev[v] {
                if comp[w] == usize::MAX {
                    comp[w] = next_id;
                    stack.push(w);
                }
            }
        }
        next_id += 1;
    }
    for c in comp.iter_mut().filter(|c| **c == usize::MAX) {
        *c = next_id;
        next_id += 1;
    }
    comp
}

/// All nodes that transitively depend on `i`, plus `i`, ascending; empty when `i` is out of range.
pub(crate) fn downstream(needs: &[&[usize]], i: usize) -> Vec<usize> {
    let n = needs.len();
    if i >= n {
        return Vec::new();
    }
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (v, ns) in needs.iter().enumerate() {
        for &w in ns.iter().filter(|&&w| w < n) {
            dependents[w].push(v);
        }
    }
    let mut seen = vec![false; n];
    seen[i] = true;
    let mut stack = vec![i];
    while let Some(v) = stack.pop() {
        for &d in &dependents[v] {
            if !seen[d] {
                seen[d] = true;
                stack.push(d);
            }
        }
    }
    (0..n).filter(|&v| seen[v]).collect()
}

/// Marks every transitive dependency of `b` (not `b` itself unless it is on a cycle).
pub(crate) fn ancestors(needs: &[&[usize]], b: usize) -> Vec<bool> {
    let n = needs.len();
    let mut seen = vec![false; n];
    let mut stack: Vec<usize> = needs.get(b).map(|ns| ns.to_vec()).unwrap_or_default();
    while let Some(v) = stack.pop() {
        if v < n && !seen[v] {
            seen[v] = true;
            stack.extend_from_slice(needs[v]);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_topological_order() {
        // 0 needs 2, 1 has no needs, 2 has no needs.
        let needs = vec![vec![2], vec![], vec![]];
        assert_eq!(topo_order(&needs), Ok(vec![1, 2, 0]));
        let needs = vec![vec![], vec![0], vec![0], vec![1, 2]];
        assert_eq!(topo_order(&needs), Ok(vec![0, 1, 2, 3]));
    }

    #[test]
    fn cycles_are_extracted() {
        // 0 -> 1 -> 2 -> 0, 3 -> 3 (self), 4 needs 0 (stuck but not on a cycle).
        let needs = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        assert_eq!(topo_order(&needs), Err(vec![vec![0, 1, 2], vec![3]]));
    }

    #[test]
    fn reachability() {
        let needs: Vec<&[usize]> = vec![&[], &[0], &[1], &[]];
        assert_eq!(downstream(&needs, 0), vec![0, 1, 2]);
        assert_eq!(downstream(&needs, 3), vec![3]);
        assert!(downstream(&needs, 9).is_empty());
        let anc = ancestors(&needs, 2);
        assert_eq!(anc, vec![true, true, false, false]);
        assert!(ancestors(&needs, 9).iter().all(|x| !x));
    }
}
