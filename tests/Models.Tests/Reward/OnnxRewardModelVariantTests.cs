using PrefPipe.Models.Reward;
using PrefPipe.Text.Tokenizers;
using static PrefPipe.Models.Tests.Reward.TinyOnnx;

namespace PrefPipe.Models.Tests.Reward;

/// <summary>
/// Input/output variants of exported reward models, on hand-written graphs whose score is Σ ids·mask over the sequence
/// (so expected scores are sums of the real token ids; padding with id 0 adds nothing).
/// </summary>
public sealed class OnnxRewardModelVariantTests
{
    private static Node[] SumOfIds(string output, string ids = "input_ids") =>
    [
        new("Cast", [ids], ["ids_f"], ("to", (long)TFloat)),
        new("Cast", ["attention_mask"], ["mask_f"], ("to", (long)TFloat)),
        new("Mul", ["ids_f", "mask_f"], ["masked"]),
        new("ReduceSum", ["masked"], [output], ("axes", new long[] { 1 }), ("keepdims", 1L)),
    ];

    private static Value[] Inputs(int type = TInt64, object? batch = null, object? seq = null) =>
        [new("input_ids", type, batch ?? "batch", seq ?? "sequence"), new("attention_mask", type, batch ?? "batch", seq ?? "sequence")];

    private static OnnxRewardModel Load(string dir, RewardModelOptions? options = null)
    {
        options ??= new RewardModelOptions();
        options.PadTokenId ??= 0;
        options.Device = RewardDevice.Cpu;
        return OnnxRewardModel.Load(dir, tokenizer: null, options);
    }

    [Fact]
    public void ScoreIds_Int32Inputs_AreFedAsInt32()
    {
        using var model = Load(Write(Inputs(TInt32), SumOfIds("logits"), [new("logits", TFloat, "batch", 1)]));

        var scores = model.ScoreIds([[5, 6, 7], [1, 2]]).Scores;

        Assert.Equal([18f, 3f], scores); // 5+6+7, 1+2
    }

    [Fact]
    public void Load_OutputNotNamedLogitsBesideExtraOutputs_ReadsTheOnePooledOutput()
    {
        // torch.onnx without output_names: the score is "linear_3"; a [batch, seq, 1] extra output (as hidden states or
        // past key/values are) comes first.
        var nodes = SumOfIds("linear_3").Append(new("Unsqueeze", ["ids_f"], ["hidden"], ("axes", new long[] { 2 }))).ToArray();
        using var model = Load(Write(Inputs(), nodes, [new("hidden", TFloat, "batch", "sequence", 1), new("linear_3", TFloat, "batch", 1)]));

        Assert.Equal("linear_3", model.OutputName);
        Assert.Equal([18f], model.ScoreIds([[5, 6, 7]]).Scores);
    }

    [Fact]
    public void Load_TwoCandidateOutputsWithoutLogits_FailsUntilOutputNameIsSet()
    {
        var nodes = SumOfIds("a").Append(new("Mul", ["a", "a"], ["b"])).ToArray(); // b = a²
        string dir = Write(Inputs(), nodes, [new("a", TFloat, "batch", 1), new("b", TFloat, "batch", 1)]);

        var ex = Assert.Throws<InvalidDataException>(() => Load(dir));
        using var model = Load(dir, new RewardModelOptions { OutputName = "b" });

        Assert.Contains("set OutputName", ex.Message, StringComparison.Ordinal);
        Assert.Equal([9f], model.ScoreIds([[1, 2]]).Scores); // (1+2)²
    }

    [Fact]
    public void ScoreIds_Float16OutputWithTwoColumns_ReadsTheConfiguredIndex()
    {
        // logits = Σ · [1, 10] → [batch, 2], cast to float16: column 1 is 10·Σ.
        Node[] nodes = [.. SumOfIds("sum"), new("MatMul", ["sum", "w"], ["wide"]), new("Cast", ["wide"], ["logits"], ("to", (long)TFloat16))];
        using var model = Load(Write(Inputs(), nodes, [new("logits", TFloat16, "batch", 2)], [new("w", [1, 2], [1f, 10f])]),
            new RewardModelOptions { ScoreIndex = 1 });

        Assert.Equal([180f, 30f], model.ScoreIds([[5, 6, 7], [1, 2]]).Scores); // 10·18, 10·3
    }

    [Fact]
    public void Load_PerTokenOutput_IsRefusedAsNotPooled()
    {
        Node[] nodes = [new("Cast", ["input_ids"], ["logits"], ("to", (long)TFloat))];
        string dir = Write([new("input_ids", TInt64, "batch", "sequence")], nodes, [new("logits", TFloat, "batch", "sequence")]);

        var ex = Assert.Throws<InvalidDataException>(() => Load(dir));

        Assert.Contains("one score per token", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ScoreIds_ScoreIndexBeyondTheRuntimeWidth_FailsInsteadOfReadingTheNextRow()
    {
        // logits = Σ·Σᵀ is [batch, batch]: its width is only known at run time. One row gives [1, 1], where index 1
        // lies past the row (with more rows it would be another row's column).
        Node[] nodes = [.. SumOfIds("sum"), new("Transpose", ["sum"], ["sum_t"], ("perm", new long[] { 1, 0 })), new("MatMul", ["sum", "sum_t"], ["logits"])];
        string dir = Write(Inputs(), nodes, [new("logits", TFloat, "batch", "labels")]);
        using var model = Load(dir, new RewardModelOptions { ScoreIndex = 1, Padding = RewardPadding.Right });

        var ex = Assert.Throws<InvalidDataException>(() => model.ScoreIds([[5, 6, 7]]));

        Assert.Contains("score index 1 is out of range", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(RewardPadding.Right)]
    [InlineData(RewardPadding.Left)]
    public void ScoreIds_PositionAndTokenTypeInputs_AreArangeFromTheFirstRealTokenAndZeros(RewardPadding padding)
    {
        // score = Σ (id + position + token_type)·mask: [5, 6, 7] at positions 0, 1, 2 → 18 + 3 = 21; [1, 2] → 3 + 1 = 4.
        Node[] nodes =
        [
            new("Cast", ["input_ids"], ["ids_f"], ("to", (long)TFloat)),
            new("Cast", ["position_ids"], ["pos_f"], ("to", (long)TFloat)),
            new("Cast", ["token_type_ids"], ["tt_f"], ("to", (long)TFloat)),
            new("Cast", ["attention_mask"], ["mask_f"], ("to", (long)TFloat)),
            new("Add", ["ids_f", "pos_f"], ["s1"]),
            new("Add", ["s1", "tt_f"], ["s2"]),
            new("Mul", ["s2", "mask_f"], ["masked"]),
            new("ReduceSum", ["masked"], ["logits"], ("axes", new long[] { 1 }), ("keepdims", 1L)),
        ];
        Value[] inputs = [.. Inputs(), new("position_ids", TInt64, "batch", "sequence"), new("token_type_ids", TInt64, "batch", "sequence")];
        using var model = Load(Write(inputs, nodes, [new("logits", TFloat, "batch", 1)]), new RewardModelOptions { Padding = padding });

        Assert.Equal([21f, 4f], model.ScoreIds([[5, 6, 7], [1, 2]]).Scores);
    }

    [Fact]
    public void ScoreIds_FixedBatchAndLength_FillsBatchesAndPadsAndTruncatesToTheTracedShape()
    {
        // Exported without dynamic axes: input_ids [2, 8]. Three rows make two batches (the second filled); the
        // 10-token row is cut to its last 8 tokens (3..10, Σ = 52); the padding probe compares right and left padding.
        using var model = Load(Write(Inputs(TInt64, 2, 8), SumOfIds("logits"), [new("logits", TFloat, 2, 1)]));

        var scores = model.ScoreIds([[5, 6, 7], [1, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]).Scores;

        Assert.Equal(8, model.MaxLength);
        Assert.Equal(RewardPadding.Right, model.PaddingSide);
        Assert.Equal([18f, 3f, 52f], scores);
    }

    [Fact]
    public void ScoreTexts_WordPieceTokenizer_EncodesWithClsSepAndPadsWithPadToken()
    {
        // The WordPiece fixture (BERT layout, [PAD] = 0) and no tokenizer_config.json: the pad id is found as the [PAD]
        // token. The score of a text is the sum of its ids, [CLS] (2) and [SEP] (3) included.
        var tokenizer = HfTokenizer.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "wordpiece", "wordpiece-tokenizer.json"));
        using var model = OnnxRewardModel.Load(Write(Inputs(), SumOfIds("logits"), [new("logits", TFloat, "batch", 1)]),
            tokenizer, new RewardModelOptions { Device = RewardDevice.Cpu });

        var scores = model.ScoreTexts(["The Café is OPEN!", "hello world"]).Scores;

        Assert.Equal(0, model.PadTokenId);
        Assert.Equal([2f + 5 + 6 + 7 + 8 + 18 + 3, 2f + 16 + 17 + 3], scores);
    }
}
