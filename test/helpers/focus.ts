/**
 * A validator of FinOps FOCUS 1.x CSV, written from the FOCUS column definitions (not from the
 * exporter): every column the export claims, each mandatory column present, non-null where FOCUS
 * says it must not be null, and each value of its type (decimal, ISO 8601 UTC datetime, JSON
 * object, one of the allowed values). Throws with the row and column of the first problem.
 */
type Kind = 'decimal' | 'datetime' | 'string' | 'json' | { values: string[] };
interface ColumnRule {
  kind: Kind;
  /** FOCUS: "MUST NOT be null" */
  required: boolean;
}

const decimal: ColumnRule = { kind: 'decimal', required: true };
const nullableDecimal: ColumnRule = { kind: 'decimal', required: false };
const datetime: ColumnRule = { kind: 'datetime', required: true };
const text: ColumnRule = { kind: 'string', required: true };
const nullableText: ColumnRule = { kind: 'string', required: false };

/** The FOCUS 1.x mandatory columns (and their types) an export must carry. */
export const focusRules: Record<string, ColumnRule> = {
  BilledCost: decimal,
  BillingAccountId: text,
  BillingAccountName: nullableText,
  BillingCurrency: { kind: 'string', required: true },
  BillingPeriodEnd: datetime,
  BillingPeriodStart: datetime,
  ChargeCategory: { kind: { values: ['Usage', 'Purchase', 'Tax', 'Credit', 'Adjustment'] }, required: true },
  ChargeClass: { kind: { values: ['Correction'] }, required: false },
  ChargeDescription: nullableText,
  ChargeFrequency: { kind: { values: ['One-Time', 'Recurring', 'Usage-Based'] }, required: true },
  ChargePeriodEnd: datetime,
  ChargePeriodStart: datetime,
  ConsumedQuantity: nullableDecimal,
  ConsumedUnit: nullableText,
  ContractedCost: decimal,
  ContractedUnitPrice: nullableDecimal,
  EffectiveCost: decimal,
  InvoiceIssuerName: text,
  ListCost: decimal,
  ListUnitPrice: nullableDecimal,
  PricingCategory: { kind: { values: ['Standard', 'Dynamic', 'Committed', 'Other'] }, required: false },
  PricingQuantity: nullableDecimal,
  PricingUnit: nullableText,
  ProviderName: text,
  PublisherName: text,
  RegionId: nullableText,
  RegionName: nullableText,
  ResourceId: nullableText,
  ResourceName: nullableText,
  ResourceType: nullableText,
  ServiceCategory: {
    kind: {
      values: [
        'AI and Machine Learning',
        'Analytics',
        'Business Applications',
        'Compute',
        'Databases',
        'Developer Tools',
        'Multicloud',
        'Identity',
        'Integration',
        'Internet of Things',
        'Management and Governance',
        'Media',
        'Migration',
        'Mobile',
        'Networking',
        'Security',
        'Storage',
        'Web',
        'Other',
      ],
    },
    required: true,
  },
  ServiceName: text,
  SkuId: nullableText,
  SkuPriceId: nullableText,
  SubAccountId: nullableText,
  SubAccountName: nullableText,
  Tags: { kind: 'json', required: false },
};

/** RFC 4180: fields split by commas, records by CRLF, quoted fields may hold both and "" for a quote. */
export function parseCsv(csv: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < csv.length; i++) {
    const ch = csv[i]!;
    if (quoted) {
      if (ch === '"' && csv[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') {
      if (field !== '') throw new Error(`a quote inside an unquoted field at ${i}`);
      quoted = true;
    } else if (ch === ',') {
      record.push(field);
      field = '';
    } else if (ch === '\r' && csv[i + 1] === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      i++;
    } else if (ch === '\n' || ch === '\r') throw new Error(`a bare line break at ${i}: records end with CRLF`);
    else field += ch;
  }
  if (quoted) throw new Error('an unterminated quoted field');
  if (field !== '' || record.length > 0) throw new Error('the last record does not end with CRLF');
  return records;
}

const isoUtc = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
const decimalPattern = /^-?\d+(\.\d+)?$/;

function check(kind: Kind, value: string): boolean {
  if (kind === 'decimal') return decimalPattern.test(value) && Number.isFinite(Number(value));
  if (kind === 'datetime') return isoUtc.test(value) && !Number.isNaN(Date.parse(value));
  if (kind === 'string') return true;
  if (kind === 'json') {
    try {
      const v: unknown = JSON.parse(value);
      return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
    } catch {
      return false;
    }
  }
  return kind.values.includes(value);
}

/** The rows, each a map of column to value (null for an empty field); throws at the first violation. */
export function validateFocus(csv: string): Record<string, string | null>[] {
  const [header, ...records] = parseCsv(csv);
  if (!header) throw new Error('no header');
  if (new Set(header).size !== header.length) throw new Error('a column appears twice');
  const missing = Object.keys(focusRules).filter((c) => !header.includes(c));
  if (missing.length > 0) throw new Error(`missing FOCUS columns: ${missing.join(', ')}`);
  const unknown = header.filter((c) => !(c in focusRules) && !c.startsWith('x_'));
  if (unknown.length > 0) throw new Error(`columns FOCUS does not define (custom ones start with x_): ${unknown.join(', ')}`);
  return records.map((fields, i) => {
    if (fields.length !== header.length) throw new Error(`row ${i + 1}: ${fields.length} fields, not ${header.length}`);
    const row: Record<string, string | null> = {};
    header.forEach((column, j) => {
      const value = fields[j] === '' ? null : fields[j]!;
      const rule = focusRules[column];
      if (rule) {
        if (value === null && rule.required) throw new Error(`row ${i + 1}: ${column} must not be null`);
        if (value !== null && !check(rule.kind, value)) throw new Error(`row ${i + 1}: ${column} is not a valid ${JSON.stringify(rule.kind)}: ${value}`);
      }
      row[column] = value;
    });
    if (Date.parse(row.ChargePeriodEnd!) <= Date.parse(row.ChargePeriodStart!)) throw new Error(`row ${i + 1}: the charge period ends before it starts`);
    if (!/^[A-Z]{3}$/.test(row.BillingCurrency!)) throw new Error(`row ${i + 1}: BillingCurrency is not an ISO 4217 code`);
    return row;
  });
}
