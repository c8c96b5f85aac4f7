using System.Text.Json;
using Polly.Timeout;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Ingest.Prompts;
using PrefPipe.Models.Remote;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Ingest.Generation;

/// <summary>The candidates of one prompt, or why there are none.</summary>
/// <param name="Prompt">The prompt.</param>
/// <param name="Rows">Its K candidates in index order; null when generation failed.</param>
/// <param name="Failure">Why generation failed (the last error, with status and body); null on success.</param>
internal sealed record PromptCandidates(ValidPrompt Prompt, IReadOnlyList<CandidateRow>? Rows, string? Failure);

/// <summary>
/// Generates K candidates per prompt on an OpenAI-compatible server. A templated prompt (the policy has a chat template)
/// goes to /chat/completions as its conversation (system prompt included), so the server renders the same template; a
/// plain one goes to /completions as the text the local engine would feed. K candidates come from one request with
/// <c>n = K</c> where the server honours it, else from K requests with distinct seeds. Every prompt of a batch is sent at
/// once; the client's concurrency limiter bounds what is in flight. A prompt whose requests still fail after the client's
/// retries comes back with the reason and no rows (the stage rejects it); nothing is dropped silently.
/// </summary>
internal sealed class RemoteCandidateGenerator(OpenAICompatibleClient client, IngestOptions options, PromptEncoder encoder)
{
    // n support: 0 not known yet, 1 honoured, -1 not (detected once, then used for every prompt).
    private int _n = options.Generator.NSupported switch { true => 1, false => -1, null => 0 };

    /// <summary>Whether the server was found to honour <c>n</c> (null: not known yet).</summary>
    public bool? NSupported => Volatile.Read(ref _n) switch { 1 => true, -1 => false, _ => null };

    /// <summary>Generates the candidates of a batch, in the batch's order.</summary>
    public async Task<IReadOnlyList<PromptCandidates>> GenerateAsync(IReadOnlyList<ValidPrompt> batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return await Task.WhenAll(batch.Select(p => GenerateAsync(p, cancellationToken))).ConfigureAwait(false);
    }

    private async Task<PromptCandidates> GenerateAsync(ValidPrompt prompt, CancellationToken cancellationToken)
    {
        int k = options.CandidatesPerPrompt;
        // The OpenAI API's seed is an integer every server parses as 32-bit or wider: the candidate seed's low 31 bits
        // (torch's sampler, the local engine's, reads only the low 32 bits of it too).
        long[] seeds = [.. Enumerable.Range(0, k).Select(i => PromptIdentity.CandidateSeed(options.Seed, prompt.PromptId, i) & int.MaxValue)];
        try
        {
            var rows = new List<CandidateRow>(k);
            if (Volatile.Read(ref _n) >= 0)
            {
                try
                {
                    var reply = await RequestAsync(prompt, k, seeds[0], cancellationToken).ConfigureAwait(false);
                    rows.AddRange(reply.Choices.Take(k).Select((c, i) => Row(prompt, i, seeds[0], c, reply)));
                    if (reply.Choices.Count >= k) Interlocked.CompareExchange(ref _n, 1, 0);
                    else if (options.Generator.NSupported == true)
                        return new(prompt, null, $"generator: the server returned {reply.Choices.Count} of n={k} choices; set ingest.generator.n_supported to false (or leave it unset to detect)");
                    else Interlocked.Exchange(ref _n, -1);
                }
                catch (HttpRequestException) when (options.Generator.NSupported is null && Volatile.Read(ref _n) <= 0)
                {
                    // Perhaps n itself is refused (llama.cpp server: "only one completion choice is allowed", HTTP 400, or
                    // 500 in older versions): try one choice per request; if that fails too, the prompt fails. The prompts
                    // of a batch go out at once, so other prompts' n requests may fail after one of them found n refused
                    // (_n is then -1): they fall back the same way.
                    var first = await RequestAsync(prompt, 1, seeds[0], cancellationToken).ConfigureAwait(false);
                    rows.Add(Row(prompt, 0, seeds[0], first.Choices[0], first));
                    Interlocked.CompareExchange(ref _n, -1, 0);
                }
            }
            // One request per missing candidate, each with its own seed.
            var rest = await Task.WhenAll(Enumerable.Range(rows.Count, k - rows.Count).Select(async i =>
            {
                var reply = await RequestAsync(prompt, 1, seeds[i], cancellationToken).ConfigureAwait(false);
                return Row(prompt, i, seeds[i], reply.Choices[0], reply);
            })).ConfigureAwait(false);
            rows.AddRange(rest);
            return new(prompt, rows, null);
        }
        catch (Exception ex) when (ex is HttpRequestException or InvalidDataException or TimeoutRejectedException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return new(prompt, null, Reason(ex));
        }
    }

    private Task<OpenAICompletion> RequestAsync(ValidPrompt prompt, int n, long seed, CancellationToken cancellationToken)
    {
        var g = options.Generator;
        IReadOnlyList<string>? stop = options.StopStrings.Count > 0 ? [.. options.StopStrings] : null;
        int? choices = n > 1 ? n : null;
        if (encoder.Templated)
        {
            var messages = encoder.Conversation(prompt.Turns).Select(t => new OpenAIChatMessage(t.Role, t.Content)).ToList();
            return client.ChatAsync(new ChatCompletionRequest
            {
                Messages = messages, Temperature = options.Temperature, TopP = options.TopP, MaxTokens = options.MaxNewTokens,
                N = choices, Seed = seed, Stop = stop, Logprobs = g.Logprobs ? true : null,
            }, cancellationToken);
        }
        return client.CompleteAsync(new TextCompletionRequest
        {
            Prompt = prompt.Rendered, Temperature = options.Temperature, TopP = options.TopP, MaxTokens = options.MaxNewTokens,
            N = choices, Seed = seed, Stop = stop, Logprobs = g.Logprobs ? 1 : null,
        }, cancellationToken);
    }

    private CandidateRow Row(ValidPrompt prompt, int index, long seed, OpenAIChoice choice, OpenAICompletion reply)
    {
        var logprobs = choice.TokenLogprobs is { Count: > 0 } l && !l.Any(double.IsNaN) ? l : null;
        int tokens = logprobs?.Count
            ?? (reply.Choices.Count == 1 && reply.CompletionTokens is int used ? used : encoder.Tokenizer.Encode(choice.Text, addSpecialTokens: false).Count);
        return new CandidateRow
        {
            PromptId = prompt.PromptId,
            Prompt = prompt.Rendered,
            CandidateIndex = index,
            Response = choice.Text,
            TokenCount = tokens,
            FinishReason = FinishReason(choice),
            Seed = seed,
            // Null when the server returned no log-probs (or any entry was not a number): never a made-up value.
            LogprobSum = logprobs?.Sum(),
            PromptInputIds = [.. prompt.PromptIds],
            // The server's token ids are not known: training encodes the response text with the policy's tokenizer.
            ResponseInputIds = null,
        };
    }

    /// <summary>
    /// The local engine's finish reasons: length; eos (ended by an end-of-sequence token); stop (a stop string). OpenAI's
    /// "stop" covers both: vLLM's stop_reason and SGLang's matched_stop tell them apart (null or a token id: eos; a string:
    /// stop); without
    /// it, "stop" is eos when no stop strings are configured and stop otherwise. TGI names them eos_token and stop_sequence.
    /// </summary>
    private string FinishReason(OpenAIChoice choice) => choice.FinishReason switch
    {
        "length" => "length",
        "eos_token" => "eos", // TGI's /v1/completions
        "stop_sequence" => "stop", // TGI
        "stop" => choice.StopReason.ValueKind switch
        {
            JsonValueKind.String => "stop",
            JsonValueKind.Null or JsonValueKind.Number => "eos",
            _ => options.StopStrings.Count == 0 ? "eos" : "stop",
        },
        null => "unknown",
        var other => other,
    };

    private static string Reason(Exception ex) => ex switch
    {
        TimeoutRejectedException t => $"generator: no reply within the attempt timeout after every retry ({t.Message})",
        HttpRequestException { StatusCode: null } h => $"generator: endpoint unreachable after every retry: {h.Message}",
        OperationCanceledException => $"generator: request cancelled by the HTTP client ({ex.Message})",
        _ => ex.Message,
    };
}
