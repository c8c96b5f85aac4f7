using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;

namespace PrefPipe.Trainer.Tests.Data;

public sealed class PairEncoderTests
{
    private static readonly ITextTokenizer Tokenizer = HfTokenizer.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy"));
    private static readonly Turn[] Prompt = [new("user", "Review of Kite Season:")];

    private static PairEncoder Encoder(int maxLength = 256, int maxPromptLength = 64, TruncationMode mode = TruncationMode.KeepEnd) =>
        new(new CompletionEncoder(Tokenizer, null), maxLength, maxPromptLength, mode);

    [Fact]
    public void Encode_Pair_HasPromptOnceAndEachCompletionEndingInEos()
    {
        var (pair, rejection) = Encoder().Encode("p1", Prompt, " A joy to watch.", " I hated it.");

        Assert.Null(rejection);
        Assert.Equal(Tokenizer.Encode("Review of Kite Season:"), pair!.PromptIds);
        Assert.Equal(Tokenizer.EosTokenId, pair.ChosenIds[^1]);
        Assert.Equal(Tokenizer.EosTokenId, pair.RejectedIds[^1]);
    }

    [Fact]
    public void Encode_RowWithPromptIdsButNoCompletionIds_KeepsThePromptIdsAndEncodesTheTexts()
    {
        // Candidates from an external server: the prompt's ids are known, the responses only as text.
        int[] promptIds = [7, 8, 9];
        var row = new PrefPipe.Artifacts.Rows.PreferenceRow { PromptId = "p1", Prompt = "not re-encoded", Chosen = " A joy to watch.", Rejected = " I hated it.", PromptInputIds = [.. promptIds] };

        var (pair, rejection) = Encoder().Encode(row);

        Assert.Null(rejection);
        Assert.Equal(promptIds, pair!.PromptIds);
        Assert.Equal([.. Tokenizer.Encode(" A joy to watch.", addSpecialTokens: false), Tokenizer.EosTokenId!.Value], pair.ChosenIds);
        Assert.Equal([.. Tokenizer.Encode(" I hated it.", addSpecialTokens: false), Tokenizer.EosTokenId!.Value], pair.RejectedIds);
    }

    [Theory]
    [InlineData("", " I hated it.", "empty chosen completion")]
    [InlineData(" A joy.", "   ", "empty rejected completion")]
    [InlineData(" Same.", " Same.", "chosen and rejected are identical")]
    public void Encode_EmptyOrIdentical_IsRejectedWithReason(string chosen, string rejected, string reason)
    {
        var (pair, rejection) = Encoder().Encode("p1", Prompt, chosen, rejected);

        Assert.Null(pair);
        Assert.Equal(new PairRejection("p1", reason), rejection);
    }

    [Fact]
    public void Encode_IdenticalAfterTruncation_IsRejected()
    {
        int promptLength = Tokenizer.Encode("Review of Kite Season:").Count;

        var (pair, rejection) = Encoder(maxLength: promptLength + 3).Encode("p1", Prompt, " The acting was gripping and fun.", " The acting was gripping but dull.");

        Assert.Null(pair);
        Assert.Contains("identical after truncation", rejection!.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Encode_LongPrompt_KeepsItsEndOrStartPerMode()
    {
        var full = Tokenizer.Encode("Review of Kite Season:");

        var (end, _) = Encoder(maxPromptLength: 3, mode: TruncationMode.KeepEnd).Encode("p", Prompt, " a", " b");
        var (start, _) = Encoder(maxPromptLength: 3, mode: TruncationMode.KeepStart).Encode("p", Prompt, " a", " b");

        Assert.Equal(full.TakeLast(3), end!.PromptIds);
        Assert.Equal(full.Take(3), start!.PromptIds);
    }

    [Fact]
    public void Sampler_SameSeedSameOrder_AllExamplesOncePerEpoch_BatchesOfSimilarLength()
    {
        var rng = new Random(3);
        int[] lengths = Enumerable.Range(0, 1000).Select(_ => rng.Next(5, 500)).ToArray();
        var a = new LengthBucketSampler(lengths, 8, seed: 42);
        var b = new LengthBucketSampler(lengths, 8, seed: 42);

        var epoch0 = a.Epoch(0);
        Assert.Equal(epoch0.SelectMany(x => x), b.Epoch(0).SelectMany(x => x));
        Assert.NotEqual(epoch0.SelectMany(x => x), a.Epoch(1).SelectMany(x => x));
        Assert.Equal(Enumerable.Range(0, 1000), epoch0.SelectMany(x => x).Order());
        Assert.Equal(125, a.BatchesPerEpoch);
        double meanSpread = epoch0.Average(batch => batch.Max(i => lengths[i]) - batch.Min(i => lengths[i]));
        Assert.True(meanSpread < 60, $"batches should hold similar lengths; mean spread {meanSpread}");
    }
}
