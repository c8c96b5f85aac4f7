using System.Text.Json;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Decoders.Families.Gemma;
using PrefPipe.Models.Decoders.Families.Llama;
using PrefPipe.Models.Decoders.Families.Olmo2;
using PrefPipe.Models.Decoders.Families.Phi3;
using PrefPipe.Models.Decoders.Families.Qwen3;
using PrefPipe.Models.Decoders.Modules;
using PrefPipe.Models.Generation;
using PrefPipe.Models.SafeTensors;
using PrefPipe.Models.Scoring;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Decoders;

/// <summary>
/// Every family against numbers transformers 5.17 computed (tests/fixtures/tiny-*: random-weight models from
/// tests/fixtures/families/make_families.py, eager attention, float32): logits at every position of a right-padded batch
/// of 18–23 tokens, masked sequence log-probs, and 12 greedy tokens. Sliding windows (6–8) are shorter than the sequences.
/// </summary>
public sealed class FamilyFixtureTests
{
    public static TheoryData<string> Families() =>
    [
        "tiny-qwen3", "tiny-qwen3-sliding", "tiny-gemma2", "tiny-gemma3", "tiny-gemma3-softcap-linear",
        "tiny-phi3", "tiny-phi4mini", "tiny-olmo2", "tiny-qwen2-sliding", "tiny-mistral-sliding", "tiny-llama",
    ];

    private static string Dir(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", name);

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Theory]
    [MemberData(nameof(Families))]
    public void Logits_ReferenceBatch_MatchTransformersWithin1e4(string name)
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.Load(Dir(name), CPU, ScalarType.Float32);
        using var reference = SafeTensorsFile.Open(Path.Combine(Dir(name), "reference.safetensors"));
        var ids = reference.Load("input_ids");          // [3, T] int64
        var mask = reference.Load("attention_mask");    // [3, T] int64
        var expected = reference.Load("logits");        // [3, T, vocab] float32

        using var _ = no_grad();
        var logits = model.Logits(new CausalLMInput(ids, mask));

        var valid = mask.unsqueeze(-1).to(ScalarType.Bool).expand_as(logits);
        float maxDiff = (logits - expected).abs().masked_select(valid).max().item<float>();
        Assert.True(maxDiff <= 1e-4f, $"{name}: max |Δ logits| over real tokens = {maxDiff}");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Score_ReferenceBatch_SequenceLogProbsMatchTransformers(string name)
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.Load(Dir(name), CPU);
        using var reference = SafeTensorsFile.Open(Path.Combine(Dir(name), "reference.safetensors"));
        var ids = reference.Load("input_ids").data<long>().ToArray();
        var mask = reference.Load("attention_mask").data<long>().ToArray();
        var expected = reference.Load("seq_logp").data<float>().ToArray();
        int t = ids.Length / 3;
        var items = Enumerable.Range(0, 3).Select(r =>
        {
            int n = (int)mask.Skip(r * t).Take(t).Sum();
            var row = ids.Skip(r * t).Take(n).Select(x => (int)x).ToArray();
            return ((IReadOnlyList<int>)row[..1], (IReadOnlyList<int>)row[1..]);
        }).ToList();

        using var _ = no_grad();
        using var batch = CompletionBatch.Build(items, 3, CPU);
        var scores = CompletionScorer.Score(model, batch).LogprobSum.data<float>().ToArray();

        for (int i = 0; i < 3; i++) Assert.True(Math.Abs(expected[i] - scores[i]) <= 1e-3, $"{name} row {i}: {expected[i]} vs {scores[i]}");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Generate_GreedyWithKvCache_ReproducesTransformersContinuation(string name)
    {
        using var model = CausalLM.Load(Dir(name), CPU);
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir(name), "reference.json")));
        int[] prompt = Ints(reference.RootElement.GetProperty("greedy_prompt_ids"));
        int[] expected = Ints(reference.RootElement.GetProperty("greedy_output_ids"));

        var result = new TextGenerator(model, padTokenId: 3).Generate([new GenerationRequest(prompt, 0)],
            new GenerationOptions { Greedy = true, MaxNewTokens = expected.Length - prompt.Length, EosTokenIds = [] });

        Assert.Equal(expected[prompt.Length..], result[0].NewIds);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Generate_FusedProjections_EqualTheModulesProjectionsBitForBit(string name)
    {
        // Sampled, three prompts of different lengths (left padding, masks): the fused q/k/v and gate/up fast path must
        // give the same tokens and the same float32 log-probs as the modules' own projections.
        using var model = CausalLM.Load(Dir(name), CPU);
        int vocab = model.Config.VocabSize;
        var requests = Enumerable.Range(0, 3)
            .Select(r => new GenerationRequest(Enumerable.Range(0, 4 + 3 * r).Select(i => 4 + (31 * i + 7 * r) % (vocab - 4)).ToList(), 100 + r)).ToList();
        var options = new GenerationOptions { MaxNewTokens = 12, Temperature = 1.0, EosTokenIds = [] };

        var fused = new TextGenerator(model, padTokenId: 3).Generate(requests, options);
        var modules = new TextGenerator(model, padTokenId: 3) { FuseProjections = false }.Generate(requests, options);

        for (int r = 0; r < requests.Count; r++)
        {
            Assert.Equal(modules[r].NewIds, fused[r].NewIds);
            Assert.Equal(modules[r].Logprobs, fused[r].Logprobs);
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void KvCache_DecodingPastTheWindow_EqualsTheFullForward(string name)
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.Load(Dir(name), CPU);
        using var reference = SafeTensorsFile.Open(Path.Combine(Dir(name), "reference.safetensors"));
        using var _ = no_grad();
        var ids = reference.Load("input_ids").narrow(0, 2, 1);                                  // [1, 23]: the longest text, no padding
        long t = ids.shape[1];
        // The full forward over each prefix is what transformers' generation without a cache computes (longrope picks
        // its factors by the prefix length, so one forward over all 23 tokens is not the reference for shorter prefixes).
        Tensor Last(long n) => model.Logits(new CausalLMInput(ids.narrow(1, 0, n)))[0, -1];   // [vocab]

        using var cache = new KvCache(model.Config, 1, t, model.DType, CPU);
        var prefill = model.Logits(new CausalLMInput(ids.narrow(1, 0, 5), Cache: cache));     // [1, 5, vocab]
        var full = model.Logits(new CausalLMInput(ids.narrow(1, 0, 5)));                        // [1, 5, vocab]
        float worst = (prefill - full).abs().max().item<float>();
        for (long i = 5; i < t; i++)
        {
            Tensor step;
            if (model.CacheGoesStale(cache.Length, i + 1))
            {
                cache.Reset();                                                                   // longrope: re-encode, as transformers does
                step = model.Logits(new CausalLMInput(ids.narrow(1, 0, i + 1), Cache: cache))[0, -1];
            }
            else step = model.Logits(new CausalLMInput(ids.narrow(1, i, 1), Cache: cache))[0, 0]; // [vocab]
            worst = Math.Max(worst, (step - Last(i + 1)).abs().max().item<float>());
        }

        Assert.True(worst < 1e-4f, $"{name}: max |Δ| between cached decoding and the full forward = {worst}");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Generate_LeftPaddedBatchPastTheWindow_EqualsEachPromptAlone(string name)
    {
        using var model = CausalLM.Load(Dir(name), CPU);
        var generator = new TextGenerator(model, padTokenId: 3);
        var options = new GenerationOptions { Greedy = true, MaxNewTokens = 10, EosTokenIds = [] };
        GenerationRequest shortPrompt = new([43, 72], 1), longPrompt = new([49, 337, 86, 224, 20, 21, 45, 46, 47], 2);

        var batched = generator.Generate([shortPrompt, longPrompt], options);
        var alone = generator.Generate([shortPrompt], options).Concat(generator.Generate([longPrompt], options)).ToList();

        Assert.Equal(alone[1].NewIds, batched[1].NewIds);
        for (int i = 0; i < 10; i++) Assert.Equal(alone[1].Logprobs[i], batched[1].Logprobs[i], 4);
        // The short prompt's window counts its left pads as transformers' cache positions do, so once the window is
        // full it may differ from the prompt alone; within the window it may not.
        int exact = model.Config.SlidingWindow is int w ? Math.Max(0, w - 9) : 10;
        Assert.Equal(alone[0].NewIds.Take(exact), batched[0].NewIds.Take(exact));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Save_ThenLoad_KeepsTheFamilysLayoutConfigAndLogits(string name)
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.Load(Dir(name), CPU);
        string dir = Directory.CreateTempSubdirectory("prefpipe-family-save-").FullName;
        model.Save(dir);

        using var saved = SafeTensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        using var original = SafeTensorsFile.Open(Path.Combine(Dir(name), "model.safetensors"));
        Assert.Equal(original.Tensors.Keys.Order(StringComparer.Ordinal), saved.Tensors.Keys.Order(StringComparer.Ordinal));
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json")));
        using var originalJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir(name), "config.json")));
        Assert.Equal(originalJson.RootElement.GetProperty("model_type").GetString(), json.RootElement.GetProperty("model_type").GetString());
        Assert.Equal(originalJson.RootElement.GetProperty("architectures").GetRawText(), json.RootElement.GetProperty("architectures").GetRawText());

        using var reloaded = CausalLM.Load(dir, CPU);
        Assert.Equal(model.Config.GetType(), reloaded.Config.GetType());
        using var _ = no_grad();
        var ids = tensor(new long[] { 43, 72, 79, 379, 312, 267, 20, 21, 22, 23, 24 }, new long[] { 1, 11 });
        Assert.Equal(0f, (reloaded.Logits(new CausalLMInput(ids)) - model.Logits(new CausalLMInput(ids))).abs().max().item<float>());
    }

    [Theory]
    [InlineData("tiny-qwen3", typeof(Qwen3Config))]
    [InlineData("tiny-gemma2", typeof(Gemma2Config))]
    [InlineData("tiny-gemma3", typeof(Gemma3TextConfig))]
    [InlineData("tiny-phi3", typeof(Phi3Config))]
    [InlineData("tiny-olmo2", typeof(Olmo2Config))]
    [InlineData("tiny-mistral-sliding", typeof(LlamaConfig))]
    public void Load_Config_PicksTheFamilyByModelType(string name, Type expected)
    {
        Assert.IsType(expected, DecoderConfig.Load(Dir(name)));
    }

    [Fact]
    public void Load_Gemma3Config_ReadsPerLayerTypeRopeAndLayerTypes()
    {
        var config = Assert.IsType<Gemma3TextConfig>(DecoderConfig.Load(Dir("tiny-gemma3-softcap-linear")));

        Assert.Equal(1_000_000, config.RopeTheta);
        Assert.Equal(new RopeScaling("linear", 8.0, OriginalMaxPositionEmbeddings: 256), config.RopeScaling);
        Assert.Equal(new RopeSettings(10000, null), config.SlidingRope);
        Assert.Equal([true, false, true], Enumerable.Range(0, 3).Select(config.IsSliding));
        Assert.Equal(6, config.SlidingWindow);
        Assert.Equal(30.0, config.FinalLogitSoftcapping);
        Assert.Null(config.AttnLogitSoftcapping);
        Assert.Equal(16, config.QueryPreAttnScalar);
    }

    [Fact]
    public void Load_Phi4MiniConfig_ReadsPartialRotaryAndLongrope()
    {
        var config = Assert.IsType<Phi3Config>(DecoderConfig.Load(Dir("tiny-phi4mini")));

        Assert.Equal(0.75, config.PartialRotaryFactor);
        Assert.Equal("longrope", config.RopeScaling!.Type);
        Assert.Equal(64, config.RopeScaling.OriginalMaxPositionEmbeddings);
        Assert.Equal(4.0, config.RopeScaling.Factor); // max_position_embeddings / original
        Assert.Equal(6, config.RopeScaling.LongFactor!.Count);
        Assert.True(config.TieWordEmbeddings);
    }

    [Fact]
    public void Generate_LongropePastTheOriginalContext_EqualsGreedyOverFullForwards()
    {
        // tiny-phi3: original_max_position_embeddings 16. Generating 20 tokens from a 4-token prompt crosses it; the
        // cache holds short-factor keys there, so the generator re-encodes with the long factors (as transformers does)
        // and must then agree with argmax over full forward passes, which use the long factors for the whole sequence.
        using var model = CausalLM.Load(Dir("tiny-phi3"), CPU);
        int[] prompt = [0, 43, 72, 79];
        var generated = new TextGenerator(model, padTokenId: 3).Generate([new GenerationRequest(prompt, 0)],
            new GenerationOptions { Greedy = true, MaxNewTokens = 20, EosTokenIds = [] })[0].NewIds;

        var sequence = prompt.Select(i => (long)i).ToList();
        using (var _ = no_grad())
            for (int step = 0; step < 20; step++)
            {
                using var scope = NewDisposeScope();
                var logits = model.Logits(new CausalLMInput(tensor(sequence.ToArray(), new long[] { 1, sequence.Count }))); // [1, n, vocab]
                sequence.Add(logits[0, -1].argmax().item<long>());
            }

        Assert.Equal(sequence.Skip(prompt.Length).Select(x => (int)x), generated);
    }
}
