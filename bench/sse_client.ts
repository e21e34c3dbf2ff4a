/** A streamed chat request against an OpenAI-compatible server, for the load benchmarks. */

/** One streamed chat request: time to first content, completion tokens and route. */
export async function streamOnce(
  url: string,
  model: string,
  prompt: string,
  maxTokens: number,
  seed: number,
): Promise<{ ttftMs: number; tokens: number; expert: string }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model,
      messages: [{ role: "user", content: prompt }],
      max_tokens: maxTokens,
      temperature: 0.8,
      seed,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (res.status !== 200 || !res.body) throw new Error(`status ${res.status}: ${await res.text()}`);
  let ttftMs = NaN, tokens = -1, expert = "dense", buffered = "";
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (let i = 0; i < 100_000; i++) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += value;
    let cut;
    while ((cut = buffered.indexOf("\n\n")) >= 0) {
      const event = buffered.slice(0, cut).replace(/^data: /, "");
      buffered = buffered.slice(cut + 2);
      if (event === "[DONE]") continue;
      const chunk = JSON.parse(event);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.mediator) expert = chunk.mediator.experts[0] ?? "dense";
      if (Number.isNaN(ttftMs) && chunk.choices?.[0]?.delta?.content) {
        ttftMs = performance.now() - t0;
      }
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  if (tokens < 0) throw new Error("the stream ended without a usage chunk");
  return { ttftMs, tokens, expert };
}
