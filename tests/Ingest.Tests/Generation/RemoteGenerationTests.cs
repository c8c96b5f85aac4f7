using System.Collections.Concurrent;
using System.Text;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Ingest.Generation;
using PrefPipe.Ingest.Prompts;
using PrefPipe.Tests.Remote;

namespace PrefPipe.Ingest.Tests.Generation;

/// <summary>Ingest with <c>generator.type: openai</c> against an OpenAI-API-shaped server on loopback.</summary>
public sealed class RemoteGenerationTests
{
    private const string SecretKey = "sk-ingest-test-5d1e7b2a-secret";
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");
    private static readonly string Templated = Path.Combine(AppContext.BaseDirectory, "fixtures", "templated-bos-policy");

    static RemoteGenerationTests() => Environment.SetEnvironmentVariable(GeneratorOptions.ApiKeyVariable, SecretKey);

    private static string WriteLines(IEnumerable<string> lines)
    {
        string file = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-remote-prompts-").FullName, "prompts.jsonl");
        File.WriteAllLines(file, lines);
        return file;
    }

    private static string DemoPrompts(int take) => WriteLines(File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(take));

    private static IngestOptions Options(OpenAIReferenceServer server, Action<GeneratorOptions>? configure = null)
    {
        var options = new IngestOptions
        {
            CandidatesPerPrompt = 4, MaxNewTokens = 12, BatchSize = 8, Seed = 11, TopP = 0.95, Deduplicate = false,
            Generator = new GeneratorOptions
            {
                Type = GeneratorType.OpenAI, BaseUrl = server.V1, Model = "policy", MaxConcurrency = 4,
                RetryBaseDelay = TimeSpan.FromMilliseconds(10), Timeout = TimeSpan.FromSeconds(20),
            },
        };
        configure?.Invoke(options.Generator);
        return options;
    }

    private static LocalArtifactStore Store() => new(Directory.CreateTempSubdirectory("prefpipe-remote-").FullName);

    private static long SentSeed(string promptId, int index) => PromptIdentity.CandidateSeed(11, promptId, index) & int.MaxValue;

    [Fact]
    public async Task RunAsync_PlainPromptsServerWithN_OneCompletionsRequestPerPromptAndRowsAsTheServerAnswered()
    {
        await using var server = new OpenAIReferenceServer();
        var store = Store();
        string prompts = DemoPrompts(10);

        var result = await new IngestStage(Options(server)).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), store, "i");

        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "i/candidates.parquet");
        var promptRows = (await ParquetArtifacts.ReadAllAsync<PromptRow>(store, "i/prompts.parquet")).ToDictionary(p => p.PromptId);
        Assert.Equal(10, server.Requests.Count);
        Assert.All(server.Requests, r =>
        {
            Assert.Equal("/v1/completions", r.Path);
            Assert.Equal(4, r.Body["n"]!.GetValue<int>());
            Assert.Equal(12, r.Body["max_tokens"]!.GetValue<int>());
            Assert.Equal(0.95, r.Body["top_p"]!.GetValue<double>());
            Assert.Equal(1.0, r.Body["temperature"]!.GetValue<double>());
            Assert.Equal($"Bearer {SecretKey}", r.Headers["Authorization"]);
        });
        Assert.Equal(40, result.Candidates.Rows);
        Assert.Equal(10, result.Prompts.Rows);
        foreach (var c in candidates)
        {
            // The demo policy has no chat template: the prompt is sent as the text the local engine feeds.
            long seed = SentSeed(c.PromptId, 0);
            Assert.Single(server.Requests, r => r.PromptText == c.Prompt && r.Body["seed"]!.GetValue<long>() == seed);
            var (text, logprobs, finish) = OpenAIReferenceServer.Sample(c.Prompt, seed, c.CandidateIndex, 12, []);
            Assert.Equal(text, c.Response);
            Assert.Equal(seed, c.Seed);
            Assert.NotNull(c.LogprobSum);
            Assert.Equal(logprobs.Sum(), c.LogprobSum.Value, 12);
            Assert.Equal(logprobs.Count, c.TokenCount);
            Assert.Equal(finish == "length" ? "length" : "eos", c.FinishReason);
            Assert.Null(c.ResponseInputIds);
            Assert.Equal(promptRows[c.PromptId].PromptInputIds, c.PromptInputIds);
        }
        Assert.Equal(Enumerable.Range(0, 10).SelectMany(_ => Enumerable.Range(0, 4)), candidates.Select(c => c.CandidateIndex));
        foreach (string file in Directory.EnumerateFiles(store.Location, "*", SearchOption.AllDirectories))
            Assert.DoesNotContain(SecretKey, Encoding.Latin1.GetString(File.ReadAllBytes(file)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_ConversationsOnATemplatedPolicy_GoToChatCompletionsWithTheSystemPrompt()
    {
        await using var server = new OpenAIReferenceServer();
        var store = Store();
        string prompts = WriteLines([
            """{"id": "c1", "messages": [{"role": "user", "content": "Review Heat."}, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "Shorter."}]}""",
            """{"id": "p1", "prompt": "Review Alien."}""",
        ]);
        var options = Options(server);
        options.SystemPrompt = "You write film reviews.";

        var result = await new IngestStage(options).RunAsync(PromptSource.ReadAsync(prompts), prompts, Templated, store, "i");

        Assert.Equal(8, result.Candidates.Rows);
        Assert.All(server.Requests, r => Assert.Equal("/v1/chat/completions", r.Path));
        var conversation = server.Requests.Single(r => r.PromptText == "Shorter.").Body["messages"]!.AsArray()
            .Select(m => $"{m!["role"]!.GetValue<string>()}:{m["content"]!.GetValue<string>()}");
        Assert.Equal(["system:You write film reviews.", "user:Review Heat.", "assistant:Sure.", "user:Shorter."], conversation);
        var plain = server.Requests.Single(r => r.PromptText == "Review Alien.").Body["messages"]!.AsArray();
        Assert.Equal(2, plain.Count); // a plain prompt on a templated policy is one user turn, templated as locally
        Assert.True(server.Requests.All(r => r.Body["logprobs"]!.GetValue<bool>()));
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "i/candidates.parquet");
        Assert.All(candidates, c => Assert.StartsWith("<|endoftext|><start_of_turn>", c.Prompt, StringComparison.Ordinal)); // the rendered template, as the reward model reads it
    }

    [Fact]
    public async Task RunAsync_ServerIgnoresN_DetectsItAndSendsKRequestsWithDistinctSeeds()
    {
        await using var server = new OpenAIReferenceServer { SupportsN = false };
        var store = Store();
        string prompts = DemoPrompts(12);

        var result = await new IngestStage(Options(server)).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), store, "i");

        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "i/candidates.parquet");
        Assert.Equal(48, result.Candidates.Rows);
        foreach (var group in candidates.GroupBy(c => c.PromptId))
        {
            Assert.Equal([0, 1, 2, 3], group.Select(c => c.CandidateIndex));
            Assert.Equal(4, group.Select(c => c.Response).Distinct().Count());
            // Candidate 0 came from the first request (n=4, answered with one choice) or a single one: seed 0 either way.
            Assert.Equal([.. Enumerable.Range(0, 4).Select(i => SentSeed(group.Key, i))], group.Select(c => c.Seed));
        }
        // The later batch knew: no n at all.
        Assert.Contains(server.Requests, r => r.Body["n"] is null);
        Assert.Equal(48, server.Requests.Count);
    }

    [Fact]
    public async Task RunAsync_ServerRefusesN_LikeLlamaCppServer_FallsBackToKSeededRequests()
    {
        // llama.cpp's server answers n > 1 with an error ("only one completion choice is allowed").
        await using var server = new OpenAIReferenceServer
        {
            Faults = r => r.Body["n"] is { } n && n.GetValue<int>() > 1 ? new OpenAIReferenceServer.Fault(400, Message: "Illegal param: only one completion choice is allowed") : null,
        };
        var store = Store();
        string prompts = DemoPrompts(20);

        var result = await new IngestStage(Options(server)).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), store, "i");

        Assert.Equal(80, result.Candidates.Rows);
        Assert.Equal(0, result.Rejects.Rows);
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "i/candidates.parquet");
        Assert.All(candidates, c => Assert.Equal(SentSeed(c.PromptId, c.CandidateIndex), c.Seed));
        Assert.Contains(server.Requests, r => r.Body["n"] is null);
    }

    [Fact]
    public async Task RunAsync_NSupportedFalse_NeverSendsN()
    {
        await using var server = new OpenAIReferenceServer();
        string prompts = DemoPrompts(3);

        await new IngestStage(Options(server, g => g.NSupported = false)).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), Store(), "i");

        Assert.Equal(12, server.Requests.Count);
        Assert.All(server.Requests, r => Assert.Null(r.Body["n"]));
    }

    [Fact]
    public async Task RunAsync_NSupportedTrueButServerIgnoresIt_RejectsThePromptsSayingWhatToSet()
    {
        await using var server = new OpenAIReferenceServer { SupportsN = false };
        var store = Store();
        string prompts = DemoPrompts(3);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(() =>
            new IngestStage(Options(server, g => g.NSupported = true)).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), store, "i"));

        Assert.Contains("n_supported to false", ex.Message, StringComparison.Ordinal);
        var rejects = await ParquetArtifacts.ReadAllAsync<RejectRow>(store, "i/rejects.parquet");
        Assert.Equal(3, rejects.Count);
    }

    [Fact]
    public async Task RunAsync_TransientServiceUnavailableAndTooManyRequests_RetriedAndEveryPromptGenerated()
    {
        var attempts = new ConcurrentDictionary<string, int>();
        await using var server = new OpenAIReferenceServer
        {
            Faults = r => attempts.AddOrUpdate($"{r.PromptText}|{r.Body["seed"]}", 1, (_, n) => n + 1) switch
            {
                1 => new OpenAIReferenceServer.Fault(503),
                2 => new OpenAIReferenceServer.Fault(429, RetryAfterSeconds: 0),
                _ => null,
            },
        };
        string prompts = DemoPrompts(6);

        var result = await new IngestStage(Options(server)).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), Store(), "i");

        Assert.Equal(24, result.Candidates.Rows);
        Assert.Equal(0, result.Rejects.Rows);
        Assert.Equal(18, server.Requests.Count);
    }

    [Fact]
    public async Task RunAsync_PromptThatKeepsFailing_IsRejectedWithItsReasonAndResumeKeepsTheRejection()
    {
        bool broken = true;
        await using var server = new OpenAIReferenceServer
        {
            Faults = r => broken && r.PromptText == "Review of The Long Table:" ? new OpenAIReferenceServer.Fault(500, Message: "CUDA out of memory") : null,
        };
        var store = Store();
        string prompts = DemoPrompts(10);
        var options = Options(server, g => g.MaxRetries = 2);

        var result = await new IngestStage(options).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), store, "i");

        var reject = Assert.Single(await ParquetArtifacts.ReadAllAsync<RejectRow>(store, "i/rejects.parquet"));
        Assert.Equal(1, reject.Row);
        Assert.Equal("ingest", reject.Stage);
        Assert.Contains("generation failed", reject.Reason, StringComparison.Ordinal);
        Assert.Contains("HTTP 500", reject.Reason, StringComparison.Ordinal);
        Assert.Contains("after 3 attempts", reject.Reason, StringComparison.Ordinal);
        Assert.Contains("CUDA out of memory", reject.Reason, StringComparison.Ordinal);
        Assert.Contains("train-0001", reject.Raw, StringComparison.Ordinal);
        Assert.Equal(10, result.RowsIn);
        Assert.Equal(result.RowsIn, result.Prompts.Rows + result.Rejects.Rows);
        Assert.Equal(36, result.Candidates.Rows);
        var kept = await ParquetArtifacts.ReadAllAsync<PromptRow>(store, "i/prompts.parquet");
        Assert.DoesNotContain(kept, p => p.PromptId == reject.Key);

        // Same inputs again: both batches are committed, so nothing is sent, and the failed prompt is still accounted for.
        broken = false;
        int sent = server.Requests.Count;
        var resumed = await new IngestStage(options).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), store, "i");
        Assert.Equal(2, resumed.ResumedBatches);
        Assert.Equal(sent, server.Requests.Count);
        Assert.Equal(1, resumed.Rejects.Rows);
        Assert.Equal(result.Candidates.Sha256, resumed.Candidates.Sha256);
        Assert.Equal(result.Prompts.Sha256, resumed.Prompts.Sha256);
    }

    [Fact]
    public async Task RunAsync_ServerDown_FailsTheStageWithTheFirstReasonAfterWritingTheRejects()
    {
        await using var server = new OpenAIReferenceServer { Faults = _ => new OpenAIReferenceServer.Fault(503) };
        var store = Store();
        string prompts = DemoPrompts(3);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(() =>
            new IngestStage(Options(server, g => g.MaxRetries = 1)).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), store, "i"));

        Assert.Contains("failed every one of 3 prompts", ex.Message, StringComparison.Ordinal);
        Assert.Contains("HTTP 503", ex.Message, StringComparison.Ordinal);
        Assert.Equal(3, (await ParquetArtifacts.ReadAllAsync<RejectRow>(store, "i/rejects.parquet")).Count);
        Assert.DoesNotContain(SecretKey, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_ServerWithoutLogprobs_LogprobSumIsNullAndTokenCountFromUsage()
    {
        await using var server = new OpenAIReferenceServer { ReturnsLogprobs = false };
        var store = Store();
        string prompts = DemoPrompts(2);

        await new IngestStage(Options(server, g => g.NSupported = false)).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), store, "i");

        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "i/candidates.parquet");
        Assert.All(candidates, c =>
        {
            Assert.Null(c.LogprobSum);
            Assert.Equal(OpenAIReferenceServer.Sample(c.Prompt, c.Seed, 0, 12, []).Logprobs.Count, c.TokenCount); // usage.completion_tokens
        });
    }

    [Fact]
    public async Task RunAsync_BatchLargerThanMaxConcurrency_NeverMoreRequestsInFlight()
    {
        await using var server = new OpenAIReferenceServer { Delay = TimeSpan.FromMilliseconds(100) };
        string prompts = DemoPrompts(8);

        await new IngestStage(Options(server, g => { g.MaxConcurrency = 2; g.NSupported = false; })).RunAsync(PromptSource.ReadAsync(prompts), prompts, Path.Combine(Demo, "policy"), Store(), "i");

        Assert.Equal(32, server.Requests.Count);
        Assert.Equal(2, server.MaxInFlight);
    }

    [Fact]
    public void Options_OpenAIWithoutUrlOrModelOrWithTopK_FailNamingEachKey()
    {
        var options = new IngestOptions { TopK = 5, OverLong = OverLongPolicy.Truncate, Generator = new GeneratorOptions { Type = GeneratorType.OpenAI } };

        var ex = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => options.Validate("ingest"));

        Assert.Contains(ex.Failures, f => f.Contains("base_url is required", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("model is required", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("top_k is not part of the OpenAI API", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("over_long: truncate", StringComparison.Ordinal));
    }
}
