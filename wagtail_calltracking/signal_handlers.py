# receivers are imported by AppConfig.ready()
