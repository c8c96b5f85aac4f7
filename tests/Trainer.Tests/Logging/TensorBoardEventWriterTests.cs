using System.Text;
using PrefPipe.Trainer.Logging;

namespace PrefPipe.Trainer.Tests.Logging;

public sealed class TensorBoardEventWriterTests
{
    [Fact]
    public void Crc32C_CheckValue_MatchesTheCastagnoliStandard()
    {
        // The CRC-32C check value (RFC 3720, B.4): CRC of the ASCII digits 1–9.
        Assert.Equal(0xE3069283u, TensorBoardEventWriter.Crc32C("123456789"u8));
        Assert.Equal(0xE3069283u, TfEventReader.Crc32C("123456789"u8));
        // RFC 3720 B.4: 32 bytes of zeros.
        Assert.Equal(0x8A9136AAu, TensorBoardEventWriter.Crc32C(new byte[32]));
    }

    [Fact]
    public void AddScalars_ReadBack_FileVersionFirstThenEveryValueUnderItsTrainTag()
    {
        string dir = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-tb-").FullName, "tensorboard");
        var before = DateTimeOffset.UtcNow;
        string path;
        using (var writer = new TensorBoardEventWriter(dir))
        {
            path = writer.Path;
            writer.AddScalars(1, [new("loss", 0.6931471805599453), new("rewards/chosen", -0.125)]);
            writer.AddScalars(300, [new("loss", 0.5)]);
        }
        var after = DateTimeOffset.UtcNow;

        Assert.StartsWith("events.out.tfevents.", Path.GetFileName(path), StringComparison.Ordinal);
        var file = TfEventReader.Read(path);
        Assert.Equal("brain.Event:2", file.FileVersion);
        Assert.Equal([(1L, "train/loss", 0.6931472f), (1L, "train/rewards/chosen", -0.125f), (300L, "train/loss", 0.5f)],
            file.Scalars.Select(s => (s.Step, s.Tag, s.Value)));
        // Wall times are Unix seconds (TensorBoard's relative and wall axes).
        Assert.All(file.Scalars.Select(s => s.WallTime).Append(file.FileVersionWallTime),
            t => Assert.InRange(t, before.ToUnixTimeMilliseconds() / 1000.0 - 0.001, after.ToUnixTimeMilliseconds() / 1000.0 + 0.001));
    }

    [Fact]
    public void Read_OneByteChanged_FailsOnTheCrc()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-tb-").FullName;
        string path;
        using (var writer = new TensorBoardEventWriter(dir))
        {
            path = writer.Path;
            writer.AddScalars(1, [new("loss", 0.25)]);
        }
        byte[] bytes = File.ReadAllBytes(path);
        int at = Encoding.ASCII.GetString(bytes).IndexOf("train/loss", StringComparison.Ordinal);
        bytes[at] ^= 0x20;
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<InvalidDataException>(() => TfEventReader.Read(path));
        Assert.Contains("record 1: data CRC mismatch", error.Message, StringComparison.Ordinal);
    }
}
