/** The few S3 XML answers the storage reads: ListObjectsV2 pages. */

/** One object of a listing. */
export interface S3Object {
  /** Full object key. */
  key: string;
  /** Size in bytes. */
  size: number;
}

/** One page of a ListObjectsV2 answer. */
export interface ListPage {
  /** Objects of this page. */
  objects: S3Object[];
  /** Token for the next page, when the listing is truncated. */
  nextToken?: string;
}

/** Decode the five XML entities and numeric character references. */
export function decodeXmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, ent: string) => {
    switch (ent) {
      case "amp":
        return "&";
      case "lt":
        return "<";
      case "gt":
        return ">";
      case "quot":
        return '"';
      case "apos":
        return "'";
      default:
        return String.fromCodePoint(
          ent[1] === "x" ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10),
        );
    }
  });
}

function element(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? decodeXmlText(m[1]) : undefined;
}

/**
 * Parse a ListObjectsV2 answer. Throws SyntaxError when it is not one, so a
 * misconfigured endpoint (an HTML page, a Swift listing) is reported clearly.
 */
export function parseListObjectsV2(xml: string): ListPage {
  if (!/<ListBucketResult[\s>]/.test(xml)) {
    throw new SyntaxError("the answer is not a ListBucketResult document");
  }
  const objects: S3Object[] = [];
  for (const m of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
    const key = element(m[1], "Key");
    const size = Number(element(m[1], "Size"));
    if (key === undefined || !Number.isSafeInteger(size)) {
      throw new SyntaxError("a <Contents> entry lacks a <Key> or a numeric <Size>");
    }
    objects.push({ key, size });
  }
  const truncated = element(xml, "IsTruncated") === "true";
  const nextToken = truncated ? element(xml, "NextContinuationToken") : undefined;
  if (truncated && !nextToken) {
    throw new SyntaxError("the listing is truncated but has no <NextContinuationToken>");
  }
  return { objects, nextToken };
}
