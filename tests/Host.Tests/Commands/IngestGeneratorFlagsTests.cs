using System.CommandLine;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Commands;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Tests.Stages;
using PrefPipe.Ingest.Generation;
using PrefPipe.Tests.Remote;

namespace PrefPipe.Host.Tests.Commands;

/// <summary>
/// <c>prefpipe ingest --generator openai …</c>: the stage command generating through an OpenAI-compatible server (the
/// loopback server written to the OpenAI API reference), with flags that mirror <c>ingest.generator</c>'s keys and the
/// key only from PREFPIPE_GENERATOR_API_KEY.
/// </summary>
public sealed class IngestGeneratorFlagsTests
{
    private const string SecretKey = ExternalGeneratorPipelineTests.SecretKey;
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");
    private static readonly string Demo = Path.Combine(Fixtures, "demo");

    // One process, one value: the same key as the other tests of this assembly that set it.
    static IngestGeneratorFlagsTests() => Environment.SetEnvironmentVariable(GeneratorOptions.ApiKeyVariable, SecretKey);

    /// <summary>The first <paramref name="take"/> distinct demo prompts (the demo repeats titles; ingest deduplicates by default).</summary>
    private static string Prompts(string root, int take, bool messages)
    {
        var lines = File.ReadLines(Path.Combine(Demo, "prompts.jsonl"))
            .Select(line => (Line: line, Row: JsonDocument.Parse(line).RootElement))
            .DistinctBy(x => x.Row.GetProperty("prompt").GetString(), StringComparer.Ordinal).Take(take).Select(x =>
            {
                string id = x.Row.GetProperty("id").GetString()!, text = x.Row.GetProperty("prompt").GetString()!;
                return messages ? JsonSerializer.Serialize(new { id, messages = new[] { new { role = "user", content = text } } }) : x.Line;
            });
        string path = Path.Combine(root, "prompts.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    private static void AssertKeyNowhere(string root, params string[] outputs)
    {
        foreach (string text in outputs) Assert.DoesNotContain(SecretKey, text, StringComparison.Ordinal);
        foreach (string f in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
            Assert.DoesNotContain(SecretKey, Encoding.Latin1.GetString(File.ReadAllBytes(f)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ingest_GeneratorOpenAIPlainPrompts_CompletionsWithN_A503Retried_KeyNowhere()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-ingest-gen-").FullName;
        int seen = 0;
        OpenAIReferenceServer.Request? faulted = null;
        // The first request to arrive gets a 503 (with two in flight, not necessarily the one numbered 1).
        await using var server = new OpenAIReferenceServer
        {
            Faults = r =>
            {
                if (Interlocked.Increment(ref seen) != 1) return null;
                faulted = r;
                return new OpenAIReferenceServer.Fault(503);
            },
        };
        string output = Path.Combine(root, "ingest");

        var (exit, error, stdout) = await SmallPipeline.InvokeAsync("ingest", "--prompts", Prompts(root, 6, messages: false), "--model", Path.Combine(Demo, "policy"),
            "--output", output, "--candidates", "3", "--max-new-tokens", "8", "--seed", "5", "--batch-size", "6",
            "--generator", "openai", "--generator-base-url", server.V1.ToString(), "--generator-model", "policy",
            "--generator-max-concurrency", "2", "--generator-timeout", "20s", "--generator-max-retries", "2", "--generator-retry-base-delay", "10ms", "--json");

        Assert.True(exit == 0, $"exit {exit}: {error}");
        var requests = server.Requests.ToList();
        // The demo policy has no chat template: plain prompts go to /completions, K candidates from one request (n = 3),
        // and the one 503 is answered by a retry of the same request: 6 prompts, 7 requests.
        Assert.Equal(7, requests.Count);
        Assert.All(requests, r =>
        {
            Assert.Equal("/v1/completions", r.Path);
            Assert.Equal(3, r.Body["n"]!.GetValue<int>());
            Assert.Equal(8, r.Body["max_tokens"]!.GetValue<int>());
            Assert.Equal($"Bearer {SecretKey}", r.Headers["Authorization"]);
        });
        Assert.NotNull(faulted);
        Assert.Equal(2, requests.Count(r => r.PromptText == faulted.PromptText));
        Assert.InRange(server.MaxInFlight, 1, 2);
        using var summary = JsonDocument.Parse(stdout);
        Assert.Equal(18, summary.RootElement.GetProperty("artifacts").GetProperty("candidates").GetProperty("rows").GetInt64());
        Assert.Equal(0, summary.RootElement.GetProperty("artifacts").GetProperty("rejects").GetProperty("rows").GetInt64());
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(new LocalArtifactStore(output), "candidates.parquet");
        Assert.Equal(18, candidates.Count);
        foreach (var c in candidates)
        {
            var (text, logprobs, _) = OpenAIReferenceServer.Sample(c.Prompt, c.Seed, c.CandidateIndex, 8, []);
            Assert.Equal(text, c.Response);
            Assert.NotNull(c.LogprobSum);
            Assert.Equal(logprobs.Sum(), c.LogprobSum.Value, 12);
        }
        AssertKeyNowhere(root, stdout, error);
    }

    [Fact]
    public async Task Ingest_GeneratorOpenAIConversations_ChatCompletionsOneRequestPerCandidate_NoLogprobsIsNull_KeyNowhere()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-ingest-gen-chat-").FullName;
        int seen = 0;
        await using var server = new OpenAIReferenceServer { Faults = _ => Interlocked.Increment(ref seen) == 1 ? new OpenAIReferenceServer.Fault(503, RetryAfterSeconds: 0) : null };
        string output = Path.Combine(root, "ingest");

        var (exit, error, stdout) = await SmallPipeline.InvokeAsync("ingest", "--prompts", Prompts(root, 4, messages: true), "--model", Path.Combine(Fixtures, "templated-bos-policy"),
            "--output", output, "--candidates", "2", "--max-new-tokens", "8", "--system-prompt", "Be brief.",
            "--generator", "openai", "--generator-base-url", server.V1.ToString(), "--generator-model", "policy", "--generator-retry-base-delay", "10ms",
            "--generator-n-supported", "false", "--generator-logprobs", "false");

        Assert.True(exit == 0, $"exit {exit}: {error}");
        var requests = server.Requests.ToList();
        // A templated policy: conversations go to /chat/completions with the system prompt first; n not supported: one
        // request per candidate with its own seed (4 prompts × 2), plus the retry of the 503.
        Assert.Equal(9, requests.Count);
        Assert.All(requests, r =>
        {
            Assert.Equal("/v1/chat/completions", r.Path);
            Assert.Null(r.Body["n"]);
            Assert.Null(r.Body["logprobs"]);
            Assert.Equal("system", r.Body["messages"]!.AsArray()[0]!["role"]!.GetValue<string>());
            Assert.Equal("Be brief.", r.Body["messages"]!.AsArray()[0]!["content"]!.GetValue<string>());
        });
        Assert.Equal(8, requests.Select(r => $"{r.PromptText}|{r.Body["seed"]}").Distinct().Count());
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(new LocalArtifactStore(output), "candidates.parquet");
        Assert.Equal(8, candidates.Count);
        Assert.All(candidates, c => Assert.Null(c.LogprobSum)); // the server returned no log-probs: null, not NaN
        AssertKeyNowhere(root, stdout, error);
    }

    [Fact]
    public async Task Ingest_GeneratorAzureFlags_DeploymentUrlApiVersionAndApiKeyHeader()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-ingest-gen-azure-").FullName;
        await using var server = new OpenAIReferenceServer();

        var (exit, error, stdout) = await SmallPipeline.InvokeAsync("ingest", "--prompts", Prompts(root, 2, messages: false), "--model", Path.Combine(Demo, "policy"),
            "--output", Path.Combine(root, "ingest"), "--candidates", "2", "--max-new-tokens", "4",
            "--generator", "openai", "--generator-api", "azure", "--generator-base-url", server.BaseUri.ToString(), "--generator-deployment", "policy-dep",
            "--generator-api-version", "2024-06-01", "--generator-retry-base-delay", "10ms");

        Assert.True(exit == 0, $"exit {exit}: {error}");
        Assert.Equal(2, server.Requests.Count);
        Assert.All(server.Requests, r =>
        {
            Assert.Equal("/openai/deployments/policy-dep/completions", r.Path);
            Assert.Equal("?api-version=2024-06-01", r.Query);
            Assert.Equal(SecretKey, r.Headers["api-key"]);
            Assert.False(r.Headers.ContainsKey("Authorization"));
        });
        AssertKeyNowhere(root, stdout, error);
    }

    [Theory]
    [InlineData("--generator-max-concurrency", "0", "--generator-max-concurrency (value 0): must be between 1 and 1024")]
    [InlineData("--generator-max-retries", "21", "--generator-max-retries (value 21): must be between 0 and 20")]
    [InlineData("--generator-timeout", "2h", "--generator-timeout (value 02:00:00): must be between")]
    [InlineData("--generator-timeout", "10x", "--generator-timeout 10x: expected a duration such as 250ms, 30s")]
    [InlineData("--generator-base-url", "ftp://host/v1", "--generator-base-url (value ftp://host/v1): base_url 'ftp://host/v1' must be an absolute http(s) URL")]
    [InlineData("--generator-base-url", "host/v1", "--generator-base-url host/v1: expected an absolute http(s) URL")]
    [InlineData("--generator", "remote", "'--generator'")]
    [InlineData("--top-k", "5", "--top-k (value 5): top_k is not part of the OpenAI API")]
    public async Task Ingest_BadGeneratorFlag_ExitsTwoNamingTheFlagAndWritesNothing(string flag, string value, string expected)
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-ingest-gen-bad-").FullName;
        string output = Path.Combine(root, "ingest");
        var defaults = new Dictionary<string, string>
        {
            ["--generator"] = "openai", ["--generator-base-url"] = "http://127.0.0.1:9/v1", ["--generator-model"] = "policy",
        };
        defaults[flag] = value;

        var (exit, error, _) = await SmallPipeline.InvokeAsync(["ingest", "--prompts", Prompts(root, 2, messages: false), "--model", Path.Combine(Demo, "policy"), "--output", output,
            .. defaults.SelectMany(kv => new[] { kv.Key, kv.Value })]);

        Assert.Equal(2, exit);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task Ingest_GeneratorOpenAIWithoutUrlAndModel_ExitsTwoNamingBothFlags()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-ingest-gen-bad-").FullName;

        var (exit, error, _) = await SmallPipeline.InvokeAsync("ingest", "--prompts", Prompts(root, 2, messages: false), "--model", Path.Combine(Demo, "policy"),
            "--output", Path.Combine(root, "ingest"), "--generator", "openai");

        Assert.Equal(2, exit);
        Assert.Contains("--generator-base-url: base_url is required for type openai", error, StringComparison.Ordinal);
        Assert.Contains("--generator-model: model is required for type openai", error, StringComparison.Ordinal);
    }

    [Fact]
    public void IngestCommand_EveryGeneratorKey_HasItsFlagAndNoFlagTakesAKey()
    {
        var ingest = Cli.Build().Subcommands.Single(c => c.Name == "ingest");
        var flags = ingest.Options.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var keys = typeof(GeneratorOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.GetCustomAttribute<JsonIgnoreAttribute>() is null).Select(YamlBinder.KeyOf).ToList();

        Assert.Equal(12, keys.Count);
        Assert.All(keys, key => Assert.Contains(GeneratorFlags.FlagOf(key), flags));
        Assert.Equal(["--generator", "--generator-base-url", "--generator-max-concurrency", "--generator-n-supported"],
            new[] { "type", "base_url", "max_concurrency", "n_supported" }.Select(GeneratorFlags.FlagOf));
        Assert.DoesNotContain(flags, f => f.Contains("key", StringComparison.OrdinalIgnoreCase) || f.Contains("secret", StringComparison.OrdinalIgnoreCase));
    }
}
