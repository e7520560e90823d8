return await JobLog.Samples.Serilog.SerilogSample.RunAsync(args, Console.Out, CancellationToken.None);
