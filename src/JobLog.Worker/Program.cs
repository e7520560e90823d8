return await JobLog.Worker.Cli.Cli.RunAsync(args);
