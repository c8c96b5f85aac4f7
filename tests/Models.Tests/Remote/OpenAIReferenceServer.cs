using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PrefPipe.Tests.Remote;

/// <summary>
/// An HTTP server on 127.0.0.1 that answers POST /v1/completions and /v1/chat/completions (and Azure OpenAI's
/// /openai/deployments/{deployment}/… with api-version) with bodies shaped as the OpenAI API reference gives them:
/// <c>choices[].text</c> or <c>choices[].message.content</c>, <c>finish_reason</c>, <c>logprobs</c> (text:
/// <c>tokens</c>/<c>token_logprobs</c>; chat: <c>content[].logprob</c>), <c>usage</c>; errors as <c>{"error": {...}}</c>.
/// Replies are a deterministic function of the prompt, the seed and the choice index, so tests know what to expect.
/// </summary>
internal sealed class OpenAIReferenceServer : IAsyncDisposable
{
    private static readonly string[] Words =
    [
        "a", "wonderful", "film", "boring", "and", "dull", "brilliant", "acting", "terrible", "plot", "I", "loved", "it",
        "hated", "every", "minute", "great", "fun", "awful", "script", "superb", "cast", "weak", "ending", "moving", "story",
    ];

    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private readonly CancellationTokenSource _stop = new();
    private int _inFlight;
    private int _maxInFlight;
    private int _count;

    /// <summary>A request as received.</summary>
    public sealed record Request(int Number, string Path, string Query, IReadOnlyDictionary<string, string> Headers, JsonObject Body)
    {
        /// <summary>The prompt text (completions) or the last message's content (chat).</summary>
        public string PromptText => Body["prompt"]?.GetValue<string>() ?? Body["messages"]!.AsArray()[^1]!["content"]!.GetValue<string>();
    }

    /// <summary>A failure to answer with instead of a completion.</summary>
    public sealed record Fault(int Status, int? RetryAfterSeconds = null, string Message = "injected fault");

    /// <summary>Whether a request with n &gt; 1 gets n choices (else one, as servers that ignore n).</summary>
    public bool SupportsN { get; init; } = true;

    /// <summary>Whether replies carry log-probs when asked.</summary>
    public bool ReturnsLogprobs { get; init; } = true;

    /// <summary>Answer every request after this delay (to hold requests in flight).</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Decides per request whether to fail it; null answers normally.</summary>
    public Func<Request, Fault?> Faults { get; init; } = _ => null;

    /// <summary>The served model name (OpenAI shape); another name gets 404 as vLLM answers.</summary>
    public string Model { get; init; } = "policy";

    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>Most requests the server was handling at once.</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    public Uri BaseUri { get; }

    /// <summary>The OpenAI-shape base URL: {BaseUri}v1.</summary>
    public Uri V1 => new(BaseUri, "v1");

    public OpenAIReferenceServer()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        BaseUri = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(BaseUri.ToString());
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>The text a choice gets: seeded words, at most max_tokens of them, cut before a stop string.</summary>
    public static (string Text, List<double> Logprobs, string Finish) Sample(string prompt, long seed, int choice, int maxTokens, IReadOnlyList<string> stop)
    {
        var random = new Random(HashCode(prompt) ^ (int)(seed & int.MaxValue) ^ (choice * 7919));
        int length = 3 + random.Next(10);
        var words = new List<string>();
        var logprobs = new List<double>();
        string finish = "stop";
        for (int i = 0; i < length; i++)
        {
            if (words.Count == maxTokens) { finish = "length"; break; }
            words.Add(Words[random.Next(Words.Length)]);
            logprobs.Add(-Math.Round(0.25 + random.NextDouble() * 3, 4));
        }
        string text = " " + string.Join(' ', words) + ".";
        foreach (string s in stop)
        {
            int at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0) { text = text[..at]; finish = "stop"; }
        }
        return (text, logprobs, finish);
    }

    private static int HashCode(string s)
    {
        int h = 17;
        foreach (char c in s) h = unchecked(h * 31 + c);
        return h;
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync().ConfigureAwait(false); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (HttpListenerException) { return; }
            catch (ObjectDisposedException) { return; }
            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        int now = Interlocked.Increment(ref _inFlight);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, now, seen) != seen) { }
        try
        {
            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            string text = await reader.ReadToEndAsync().ConfigureAwait(false);
            var headers = context.Request.Headers.AllKeys.Where(k => k is not null).ToDictionary(k => k!, k => context.Request.Headers[k]!, StringComparer.OrdinalIgnoreCase);
            var body = JsonNode.Parse(text)!.AsObject();
            var request = new Request(Interlocked.Increment(ref _count), context.Request.Url!.AbsolutePath, context.Request.Url.Query, headers, body);
            Requests.Enqueue(request);
            if (Delay > TimeSpan.Zero) await Task.Delay(Delay, _stop.Token).ConfigureAwait(false);
            var (status, reply, retryAfter) = Answer(request);
            context.Response.StatusCode = status;
            if (retryAfter is int s) context.Response.Headers["Retry-After"] = s.ToString(CultureInfo.InvariantCulture);
            byte[] bytes = Encoding.UTF8.GetBytes(reply.ToJsonString());
            context.Response.ContentType = "application/json";
            await context.Response.OutputStream.WriteAsync(bytes).ConfigureAwait(false);
            context.Response.Close();
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpListenerException or ObjectDisposedException or IOException)
        {
            // The client gave up or the server is stopping.
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private static JsonObject Error(string message, string type, int code) =>
        new() { ["error"] = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = null, ["code"] = code } };

    private (int Status, JsonObject Body, int? RetryAfter) Answer(Request r)
    {
        bool chat = r.Path.EndsWith("/chat/completions", StringComparison.Ordinal);
        bool azure = r.Path.StartsWith("/openai/deployments/", StringComparison.Ordinal);
        if (!chat && !r.Path.EndsWith("/completions", StringComparison.Ordinal)) return (404, Error($"no route {r.Path}", "NotFoundError", 404), null);
        if (azure && !r.Query.Contains("api-version=", StringComparison.Ordinal)) return (404, Error("api-version is required", "invalid_request_error", 404), null);
        if (!azure && r.Body["model"]?.GetValue<string>() != Model) return (404, Error($"The model `{r.Body["model"]}` does not exist.", "NotFoundError", 404), null);
        if (Faults(r) is { } fault) return (fault.Status, Error(fault.Message, "server_error", fault.Status), fault.RetryAfterSeconds);

        int n = r.Body["n"]?.GetValue<int>() ?? 1;
        if (!SupportsN) n = 1;
        long seed = r.Body["seed"]?.GetValue<long>() ?? 0;
        int maxTokens = r.Body["max_tokens"]?.GetValue<int>() ?? 16;
        var stop = r.Body["stop"] is JsonArray a ? a.Select(x => x!.GetValue<string>()).ToList() : [];
        bool logprobs = ReturnsLogprobs && (chat ? r.Body["logprobs"]?.GetValue<bool>() == true : r.Body["logprobs"] is not null);
        var choices = new JsonArray();
        int tokens = 0;
        for (int i = 0; i < n; i++)
        {
            var (text, lps, finish) = Sample(r.PromptText, seed, i, maxTokens, stop);
            tokens += lps.Count;
            var choice = new JsonObject { ["index"] = i, ["finish_reason"] = finish };
            if (chat) choice["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text };
            else choice["text"] = text;
            if (!logprobs) choice["logprobs"] = null;
            else if (chat)
                choice["logprobs"] = new JsonObject { ["content"] = new JsonArray([.. lps.Select(l => (JsonNode)new JsonObject { ["token"] = "w", ["logprob"] = l, ["bytes"] = null, ["top_logprobs"] = new JsonArray() })]) };
            else
                choice["logprobs"] = new JsonObject
                {
                    ["tokens"] = new JsonArray([.. lps.Select(_ => (JsonNode)JsonValue.Create("w")!)]),
                    ["token_logprobs"] = new JsonArray([.. lps.Select(l => (JsonNode)JsonValue.Create(l)!)]),
                    ["top_logprobs"] = null,
                    ["text_offset"] = new JsonArray(),
                };
            choices.Add(choice);
        }
        var reply = new JsonObject
        {
            ["id"] = $"cmpl-{r.Number}",
            ["object"] = chat ? "chat.completion" : "text_completion",
            ["created"] = 1_700_000_000,
            ["model"] = Model,
            ["choices"] = choices,
            ["usage"] = new JsonObject { ["prompt_tokens"] = 5, ["completion_tokens"] = tokens, ["total_tokens"] = 5 + tokens },
        };
        return (200, reply, null);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        _listener.Close();
        try { await _loop.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); }
        catch (TimeoutException) { }
        _stop.Dispose();
    }
}
