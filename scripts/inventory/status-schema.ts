// The inventory's `status:` block (docs/status.md): devices publish outbound to the operator's MQTT broker. Part
// of the inventory schema (schema.ts); resolved into Fleet.status by fleet-status.ts.
import { z } from 'zod';
import { BROKER_URL, BROKER_URL_RULE } from './broker-url.ts';

// The period must divide an hour or a day: the device timer is a wall-clock OnCalendar (Persistent=) with a
// fixed per-device offset, so reports come exactly one period apart and 2,000 devices spread over it.
const STATUS_PERIODS = ['1m', '2m', '3m', '5m', '10m', '15m', '20m', '30m', '1h', '2h', '3h', '4h', '6h', '8h', '12h', '24h'] as const;
export const StatusSchema = z
  .strictObject({
    broker: z
      .string()
      .regex(BROKER_URL, { message: `must be ${BROKER_URL_RULE}, e.g. mqtts://mqtt.example.com:8883` })
      .describe('The MQTT broker devices publish their status to (TLS only)'),
    caFile: z.string().min(1).describe("PEM file (relative to the inventory) with the CA of the broker's certificate: pinned on every device (--cafile)"),
    period: z
      .enum(STATUS_PERIODS, { message: `must be one of ${STATUS_PERIODS.join(', ')} (a period that divides an hour or a day)` })
      .optional()
      .describe("How often each device reports (plus at first-boot milestones); a status expires after two periods. Default: the industry preset's (15m for manufacturing)"),
    topicPrefix: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, { message: 'must be 1-32 lower-case letters, digits, "_" or "-"' })
      .default('edgeforge')
      .describe('First topic level: <prefix>/<fleet>/<region>/<site>/<device>/status'),
    adminUser: z
      .string()
      .regex(/^[a-z][a-z0-9_-]{0,31}$/, { message: 'must be 1-32 lower-case letters, digits, "_" or "-", starting with a letter' })
      .default('edgeforge-admin')
      .describe('The broker user `edgeforge status` reads with'),
  })
  .describe('Fleet status reporting over MQTT (docs/status.md); without it no reporter is rendered');
