//! Deterministic simulation of phones pushing over a network that drops, duplicates
//! and reorders messages, against a minimal reference server that applies each
//! device's mutations exactly once, in order (the rule the real server will follow).

use despacho_mobile_sync::{
    generate_message, receive_message, ClientId, ClientState, MutationId, PushMessage,
    ServerMessage,
};
use serde_json::json;
use std::collections::HashMap;

/// xorshift64*: a tiny seeded generator, so the simulation needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The server's rule: per device, apply id `last + 1` and nothing else; ids at or
/// below `last` are duplicates and skipped; answer with the new `last`.
#[derive(Default)]
struct Server {
    last_mutation_id: HashMap<ClientId, MutationId>,
    applied: HashMap<ClientId, Vec<serde_json::Value>>,
}

impl Server {
    fn handle(&mut self, wire: &str) -> String {
        let push = PushMessage::decode(wire).expect("the server understands the phone");
        let last = self
            .last_mutation_id
            .entry(push.client_id.clone())
            .or_default();
        for m in push.mutations {
            if m.id == last.next() {
                self.applied
                    .entry(push.client_id.clone())
                    .or_default()
                    .push(m.args);
                *last = m.id;
            }
        }
        ServerMessage::Ack {
            client_id: push.client_id,
            last_mutation_id: *last,
        }
        .encode()
    }
}

fn simulate(seed: u64, devices: usize, mutations_per_device: u64) {
    let mut rng = Rng(seed.max(1));
    let mut server = Server::default();
    let mut phones: Vec<ClientState> = (0..devices)
        .map(|d| ClientState::new(ClientId(format!("phone-{d}"))).with_max_batch(7))
        .collect();
    let mut made = vec![0u64; devices];
    // Answers the network still holds, delivered late and out of order.
    let mut in_transit: Vec<(usize, String)> = Vec::new();

    let mut round = 0;
    loop {
        round += 1;
        assert!(round < 100_000, "the queues never drained (seed {seed})");
        let healed = made.iter().all(|&m| m == mutations_per_device);
        let d = rng.below(devices);
        let phone = &mut phones[d];

        // The technician works.
        if made[d] < mutations_per_device && rng.chance(60) {
            made[d] += 1;
            let id = phone.record("note", json!({"device": d, "n": made[d]}));
            assert_eq!(id, MutationId(made[d]), "ids increase by one per device");
        }

        // The phone pushes; the network may lose, duplicate or delay things.
        if let Some(push) = generate_message(phone) {
            let wire = push.encode();
            let lost_request = !healed && rng.chance(20);
            if !lost_request {
                let copies = if rng.chance(10) { 2 } else { 1 };
                for _ in 0..copies {
                    let answer = server.handle(&wire);
                    let lost_answer = !healed && rng.chance(20);
                    if !lost_answer {
                        in_transit.push((d, answer));
                    }
                }
            }
        }

        // Some answers arrive, in any order.
        while !in_transit.is_empty() && rng.chance(70) {
            let (to, wire) = in_transit.swap_remove(rng.below(in_transit.len()));
            let before = phones[to].last_acknowledged();
            let answer = ServerMessage::decode(&wire).unwrap();
            receive_message(&mut phones[to], answer).expect("answers are for this device");
            assert!(
                phones[to].last_acknowledged() >= before,
                "acks never go backwards"
            );
        }

        if healed && in_transit.is_empty() && phones.iter().all(|p| p.pending().len() == 0) {
            break;
        }
    }

    for (d, phone) in phones.iter().enumerate() {
        let expected: Vec<_> = (1..=mutations_per_device)
            .map(|n| json!({"device": d, "n": n}))
            .collect();
        assert_eq!(
            server
                .applied
                .get(phone.client_id())
                .cloned()
                .unwrap_or_default(),
            expected,
            "device {d}: every mutation applied exactly once, in order (seed {seed})"
        );
        assert_eq!(phone.last_acknowledged(), MutationId(mutations_per_device));
    }
}

#[test]
fn every_mutation_is_applied_exactly_once_over_a_flaky_network() {
    for seed in 1..=20 {
        simulate(seed, 5, 200);
    }
}
