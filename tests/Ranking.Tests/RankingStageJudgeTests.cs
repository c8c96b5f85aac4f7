using System.Collections.Concurrent;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Ranking.Judges;
using PrefPipe.Ranking.Tests.Judges;

namespace PrefPipe.Ranking.Tests;

/// <summary>What the LLM judge is shown when the rank stage runs: the user's prompt, not the policy's chat-template rendering.</summary>
public sealed class RankingStageJudgeTests
{
    private const string KeyVariable = "PREFPIPE_TEST_RANK_JUDGE_KEY";
    private static readonly string Reward = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "reward");

    static RankingStageJudgeTests() => Environment.SetEnvironmentVariable(KeyVariable, "sk-test");

    private static string Between(string s, string start, string end)
    {
        int i = s.IndexOf(start, StringComparison.Ordinal) + start.Length;
        return s[i..s.IndexOf(end, i, StringComparison.Ordinal)];
    }

    [Fact]
    public async Task RunAsync_LlmJudge_SeesThePlainPromptOrTheConversation_NeverTheRenderedTemplate()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-rank-judge-").FullName);
        // What ingest writes for a policy with a Gemma-style template: candidates carry the rendered prompt (BOS and turn
        // markers), the prompts artifact the input as given.
        static string Rendered(string user) => $"<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n";
        var prompts = new List<PromptRow>
        {
            new() { PromptId = "plain", Prompt = "Review of Driftwood:" },
            new() { PromptId = "single", Messages = [new ChatTurnRow { Role = "user", Content = "Review of Kite Season:" }] },
            new()
            {
                PromptId = "multi",
                Messages =
                [
                    new ChatTurnRow { Role = "system", Content = "Be brief." },
                    new ChatTurnRow { Role = "user", Content = "Hi!" },
                    new ChatTurnRow { Role = "assistant", Content = "Hello." },
                    new ChatTurnRow { Role = "user", Content = "Review of Velvet Hour:" },
                ],
            },
        };
        var rendered = new Dictionary<string, string>
        {
            ["plain"] = Rendered("Review of Driftwood:"),
            ["single"] = Rendered("Review of Kite Season:"),
            ["multi"] = "<bos><start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nReview of Velvet Hour:<end_of_turn>\n<start_of_turn>model\n",
        };
        string[] responses = [" A joy to watch, good acting.", " I hated it."];
        var candidates = prompts.SelectMany(p => responses.Select((r, k) => new CandidateRow { PromptId = p.PromptId, Prompt = rendered[p.PromptId], CandidateIndex = k, Response = r })).ToList();
        await ParquetArtifacts.WriteAsync(store, "r/ingest/prompts.parquet", prompts);
        await ParquetArtifacts.WriteAsync(store, "r/ingest/candidates.parquet", candidates);
        var seen = new ConcurrentDictionary<string, string>();
        await using var server = new LoopbackChatServer(r =>
        {
            string question = Between(r.UserMessage, "[User Question]\n", "\n\n[The Start of Assistant A's Answer]");
            seen[question] = question;
            string a = Between(r.UserMessage, "[The Start of Assistant A's Answer]\n", "\n[The End of Assistant A's Answer]");
            return new LoopbackChatServer.Reply(200, a.Contains("good", StringComparison.Ordinal) ? "[[A]]" : "[[B]]");
        });
        var options = new RankingOptions
        {
            Judge = JudgeKind.Llm,
            Llm = new LlmJudgeOptions { Endpoint = new Uri(server.BaseUri, "v1"), Model = "judge", ApiKeyVariable = KeyVariable, RetryBaseDelay = TimeSpan.FromMilliseconds(10) },
        };

        var result = await new RankingStage(options).RunAsync(store, "r/ingest/candidates.parquet", Reward, "r/rank");

        Assert.Equal(3, result.Preferences.Rows);
        Assert.Equal(
            ["Review of Driftwood:", "Review of Kite Season:", "System: Be brief.\n\nUser: Hi!\n\nAssistant: Hello.\n\nUser: Review of Velvet Hour:"],
            seen.Keys.Order(StringComparer.Ordinal));
        Assert.DoesNotContain(server.Requests, r => r.UserMessage.Contains("<bos>", StringComparison.Ordinal) || r.UserMessage.Contains("<start_of_turn>", StringComparison.Ordinal));
    }
}
