/** The Host names the simulator answers (src/simulator/hosts.ts); the routes are test/integration/simulator.test.ts. */
import { afterAll, describe, expect, test } from "bun:test";
import { AllowedHosts, hostName } from "../../../src/simulator/hosts.ts";
import { configFromToml, tempDir } from "../../helpers/index.ts";

const request = (host: string | null) => new Request("http://localhost/simulator", host === null ? {} : { headers: { host } });
const allowed = (hosts: AllowedHosts, host: string) => hosts.allows(request(host)).ok;
const dir = tempDir("hosts");
afterAll(() => dir.remove());
const settings = (toml: string) => configFromToml(toml, { dir: dir.path });

describe("hostName", () => {
  test("lower case, without the port or a trailing dot; IPv6 in brackets; IDN as punycode", () => {
    expect(hostName("LocalHost:8080")).toBe("localhost");
    expect(hostName("Example.COM.")).toBe("example.com");
    expect(hostName("[::1]:80")).toBe("[::1]");
    expect(hostName("::1")).toBe("[::1]");
    expect(hostName("::")).toBe("[::]");
    expect(hostName("0.0.0.0")).toBe("0.0.0.0");
    expect(hostName("bücher.example")).toBe("xn--bcher-kva.example");
  });

  test("anything that is not a host name is none", () => {
    for (const value of ["", " ", "a b", "host/path", "user@host", "http://host", "[zz]", "a\\b", "h?x", "h#x"])
      expect([value, hostName(value)]).toEqual([value, null]);
  });
});

describe("AllowedHosts", () => {
  test("loopback and the default listen address only, by default", () => {
    const hosts = new AllowedHosts(settings(""));
    for (const host of ["localhost", "LOCALHOST:1", "127.0.0.1:8080", "[::1]"]) expect([host, allowed(hosts, host)]).toEqual([host, true]);
    for (const host of ["evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io", "0.0.0.0", "192.168.1.5", "sim.example.test"]) {
      expect([host, allowed(hosts, host)]).toEqual([host, false]);
    }
  });

  test("the listen address, the host of server.public_url and [simulator] allowed_hosts", () => {
    const hosts = new AllowedHosts(
      settings(
        '[server]\nhost = "bot-box.lan"\npublic_url = "https://Bot.Example.com:8443/messenger"\n[simulator]\nallowed_hosts = ["sim.example.test", "10.0.0.7:9000"]',
      ),
    );
    for (const host of ["bot-box.lan:8080", "bot.example.com", "BOT.example.com:443", "sim.example.test:1", "10.0.0.7"])
      expect([host, allowed(hosts, host)]).toEqual([host, true]);
    expect(allowed(hosts, "example.com")).toBe(false);
  });

  test("names learnt when the server listens (serve: the loopback base and the address given to listen)", () => {
    const hosts = new AllowedHosts(settings('[server]\nhost = "0.0.0.0"'));
    expect(allowed(hosts, "192.168.1.5")).toBe(false);
    hosts.add("192.168.1.5");
    hosts.add("::");
    expect(allowed(hosts, "192.168.1.5:8080")).toBe(true);
    expect(allowed(hosts, "[::]:8080")).toBe(true);
  });

  test("a request without a Host header is judged by its URL; the refusal names what was asked for", () => {
    const hosts = new AllowedHosts(settings(""));
    expect(hosts.allows(new Request("http://localhost:8080/simulator")).ok).toBe(true);
    expect(hosts.allows(new Request("http://evil.example/simulator"))).toEqual({ ok: false, name: "evil.example" });
    expect(hosts.allows(request("EVIL.example:8080"))).toEqual({ ok: false, name: "evil.example" });
    expect(hosts.allows(request("a b"))).toEqual({ ok: false, name: "a b" });
  });
});

test("allowed_hosts takes host names only", () => {
  expect(() => settings('[simulator]\nallowed_hosts = ["https://sim.example.test/"]')).toThrow(
    'simulator.allowed_hosts[0]: "https://sim.example.test/" does not match the expected form (a host name such as "sim.example.com", without scheme or path)',
  );
});
