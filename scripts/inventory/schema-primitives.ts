// The inventory schema's building blocks: names, addresses, URLs, digests and Kubernetes label syntax, each with
// the error message a user reads. scripts/inventory/schema.ts composes the fleet format from them.
import { z } from 'zod';

// A DNS label: it becomes a hostname, a Kubernetes name and a directory name,
// so nothing here can contain "/", "..", upper case or spaces.
const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
export const name = (what: string) =>
  z.string().regex(new RegExp(NAME_PATTERN), {
    message: `${what} must be a DNS label: lower-case letters, digits and "-", 1-63 characters, not starting or ending with "-"`,
  });

const IPV4 = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(\\.(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}';
export const ipv4 = z.string().regex(new RegExp(`^${IPV4}$`), { message: 'must be an IPv4 address like 10.20.1.1' });
export const cidr = z.string().regex(new RegExp(`^${IPV4}/([12]?\\d|3[0-2])$`), { message: 'must be an IPv4 address with a prefix length, like 10.20.1.11/24' });
export const mac = z.string().regex(/^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$/, { message: 'must be a MAC address like dc:a6:32:01:02:03' });
export const sha256 = z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be a sha256 in lower-case hex (64 characters)' });
export const duration = z.string().regex(/^([0-9]+(ms|s|m|h))+$/, { message: 'must be a duration like 30s, 5m or 1h30m' });
// no blanks and no control characters (Go's net/url refuses C0 controls; C1 ones are controls too)
export const url = (schemes: string[]) =>
  z.string().regex(new RegExp(`^(${schemes.join('|')})://[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$`), {
    message: `must be a URL starting with ${schemes.map((s) => s + '://').join(' or ')}, without blanks or control characters`,
  });
// A host name (RFC 1123 labels, dots between), an IPv4 or an IPv6 address: what resolvers, chrony and containerd take.
export const HOSTNAME = '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*';
export const host = (what: string) =>
  z
    .string()
    .max(253)
    .regex(new RegExp(`^(${HOSTNAME}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$`), { message: `${what} must be a host name or an IP address (letters, digits, "-", "." — no blanks, no ":" except in IPv6)` });
// Kubernetes label syntax (the kubelet refuses to register a node whose --node-labels break it)
const LABEL_NAME = '[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?';
export const labelKey = z
  .string()
  .max(317)
  .regex(new RegExp(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?${LABEL_NAME}$`), {
    message: 'label keys are Kubernetes label names: [prefix/]name, the name 1-63 letters, digits, "-", "_", "." starting and ending alphanumeric',
  });
export const labelValue = z.string().regex(new RegExp(`^(${LABEL_NAME})?$`), { message: 'label values are empty or 1-63 letters, digits, "-", "_", "." starting and ending alphanumeric' });
// git check-ref-format: no control characters, blanks, ~ ^ : ? * [ \ , "..", "@{", no leading "-" or "/", no ".lock" end
export const branch = z
  .string()
  .min(1)
  .max(255)
  .regex(/^(?!-)(?!\/)(?!.*\.\.)(?!.*@\{)(?!.*\/\/)(?!.*\/\.)(?!\.)(?!.*\.lock$)(?!.*[./]$)(?!@$)[^\u0000-\u0020\u007f~^:?*[\\]+$/, {
    message: 'must be a Git branch name (git check-ref-format: no blanks or control characters, none of ~ ^ : ? * [ \\ or "..")',
  });
// An OpenSSH public key line: one line, no control characters (cloud-init re-reads authorized_keys with
// Python's splitlines, which also splits at \v, \f, \x1c-\x1e and \x85: such a comment would break the key)
export const SSH_KEY_TAIL = '( [^\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f\\u2028\\u2029]*)?$';
