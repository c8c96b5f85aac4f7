using System.Text.Json;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.SafeTensors;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Decoders;

public sealed class CausalLMTests
{
    private static readonly string TinyDir = Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama");

    private static CausalLM Tiny() => CausalLM.Load(TinyDir, CPU, ScalarType.Float32);

    [Fact]
    public void Logits_ReferenceBatchWithRightPadding_MatchTransformersWithin1e4()
    {
        using var scope = NewDisposeScope();
        using var model = Tiny();
        using var reference = SafeTensorsFile.Open(Path.Combine(TinyDir, "reference.safetensors"));
        var ids = reference.Load("input_ids");          // [3, 23] int64
        var mask = reference.Load("attention_mask");    // [3, 23] int64
        var expected = reference.Load("logits");        // [3, 23, 768] float32

        using var _ = no_grad();
        var logits = model.Logits(new CausalLMInput(ids, mask));

        var valid = mask.unsqueeze(-1).to(ScalarType.Bool).expand_as(logits);
        float maxDiff = (logits - expected).abs().masked_select(valid).max().item<float>();
        Assert.True(maxDiff <= 1e-4f, $"max |Δ logits| over real tokens = {maxDiff}");
    }

    [Fact]
    public void Load_Config_ReadsTransformers5RopeParametersAndGqa()
    {
        var config = DecoderConfig.Load(TinyDir);

        Assert.Equal(10000, config.RopeTheta);
        Assert.Null(config.RopeScaling);
        Assert.Equal(4, config.NumAttentionHeads);
        Assert.Equal(2, config.NumKeyValueHeads);
        Assert.Equal(16, config.HeadDim);
        Assert.False(config.TieWordEmbeddings);
        Assert.Equal([0], config.EosTokenIds);
    }

    [Fact]
    public void Load_UnknownArchitecture_NamesModelTypeAndSupportedOnes()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-cfg-").FullName;
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}""");

        var ex = Assert.Throws<InvalidDataException>(() => DecoderConfig.Load(dir));

        Assert.Contains("model_type 'gpt2' (architectures: GPT2LMHeadModel) is not supported", ex.Message, StringComparison.Ordinal);
        Assert.Contains("llama, qwen2, mistral", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingTensor_NamesIt()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-miss-").FullName;
        File.Copy(Path.Combine(TinyDir, "config.json"), Path.Combine(dir, "config.json"));
        using (var scope = NewDisposeScope())
        using (var weights = SafeTensorsFile.Open(Path.Combine(TinyDir, "model.safetensors")))
        {
            var kept = weights.Tensors.Keys.Where(k => k != "model.layers.1.mlp.up_proj.weight").ToDictionary(k => k, k => weights.Load(k));
            SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), kept);
        }

        var ex = Assert.Throws<InvalidDataException>(() => CausalLM.Load(dir, CPU));

        Assert.Contains("missing 1 tensor(s): model.layers.1.mlp.up_proj.weight", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_PickledCheckpointOnly_IsRefusedWithTheReason()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-pickle-").FullName;
        File.Copy(Path.Combine(TinyDir, "config.json"), Path.Combine(dir, "config.json"));
        File.WriteAllBytes(Path.Combine(dir, "pytorch_model.bin"), [0x80, 0x02]);

        var ex = Assert.Throws<FileNotFoundException>(() => CausalLM.Load(dir, CPU));

        Assert.Contains("pickles are never loaded", ex.Message, StringComparison.Ordinal);
    }

    private static string CopyWithTensors(Func<SafeTensorsFile, Dictionary<string, Tensor>> tensors)
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-weights-").FullName;
        File.Copy(Path.Combine(TinyDir, "config.json"), Path.Combine(dir, "config.json"));
        using var scope = NewDisposeScope();
        using var weights = SafeTensorsFile.Open(Path.Combine(TinyDir, "model.safetensors"));
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors(weights));
        return dir;
    }

    [Fact]
    public void Load_UnexpectedTensor_NamesItInsteadOfDroppingIt()
    {
        // A q_proj bias the config (attention_bias: false) has no place for: transformers would drop it and compute without it.
        string dir = CopyWithTensors(w => w.Tensors.Keys.ToDictionary(k => k, k => w.Load(k))
            .Append(new KeyValuePair<string, Tensor>("model.layers.0.self_attn.q_proj.bias", zeros(64))).ToDictionary());

        var ex = Assert.Throws<InvalidDataException>(() => CausalLM.Load(dir, CPU));

        Assert.Contains("unexpected 1 tensor(s) the config has no place for: model.layers.0.self_attn.q_proj.bias", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_SavedRotaryInvFreqBuffer_IsIgnoredAsTransformersDoes()
    {
        string dir = CopyWithTensors(w => w.Tensors.Keys.ToDictionary(k => k, k => w.Load(k))
            .Append(new KeyValuePair<string, Tensor>("model.layers.0.self_attn.rotary_emb.inv_freq", zeros(8))).ToDictionary());

        using var model = CausalLM.Load(dir, CPU);

        Assert.Equal(2, model.Config.NumHiddenLayers);
    }

    [Fact]
    public void Load_WrongShape_NamesTheTensorWithFileAndModelShapes()
    {
        string dir = CopyWithTensors(w => w.Tensors.Keys.ToDictionary(k => k,
            k => k == "model.layers.0.mlp.down_proj.weight" ? zeros(64, 80) : w.Load(k))); // model: [hidden 64, intermediate 160]

        var ex = Assert.Throws<InvalidDataException>(() => CausalLM.Load(dir, CPU));

        Assert.Contains("wrong shape: model.layers.0.mlp.down_proj.weight: file [64, 80], model [64, 160]", ex.Message, StringComparison.Ordinal);
    }
}
